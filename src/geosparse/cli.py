"""Command line of geosparse (also: python -m geosparse).

  geosparse train TASK --config FILE [--set KEY=VALUE ...] [--seed S] --out DIR
  geosparse data wikitext2 --dest DIR [--source URL_OR_PATH ...]   fetch and verify
  geosparse sweep navigation --run DIR --levels L ... --out FILE   post-hoc pruning levels
  geosparse export --run DIR --out FILE                            sparse inference model
  geosparse benchmark-inference --run DIR --out FILE.json          CPU latency / memory

`geosparse train TASK --help` lists the config keys of TASK (navigation, language, adding).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

import geosparse
from geosparse.config import InputError, resolve
from geosparse.sparse.formats import EXPORT_LAYOUTS, ORDERS

HEADLINES = {"navigation": "error_cm", "language": "test_ppl", "adding": "test_mse"}
"""Task -> the result printed after training (the tasks themselves: geosparse.tasks.TASKS)."""
TASKS = tuple(HEADLINES)


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _task_help(task: str) -> tuple[str, str]:
    """(description, epilog) of ``geosparse train TASK --help``, from the task's run schema:
    what a run is, its shipped configs, and every config section with its keys."""
    from geosparse.config import load_schema

    schema = load_schema(task)
    configs = sorted(p.name for p in (Path("config") / task).glob("*.yaml"))
    description = " ".join(schema["description"].split())
    if configs:
        description += f" Shipped configs (from the repository root): config/{task}/{{{','.join(configs)}}}."
    lines = [
        f"config keys (--set SECTION.KEY=VALUE; meanings: README.md and src/geosparse/schemas/{task}.schema.yaml):"
    ]
    for section, spec in schema["properties"].items():
        if "$ref" in spec:  # a shared section, e.g. {$ref: "regularizer.schema.yaml"}
            spec = load_schema(spec["$ref"].removesuffix(".schema.yaml"))
        keys = sorted(spec.get("properties", {}))
        lines.append(f"  {section}: {', '.join(keys)}" if keys else f"  {section}")
    lines.append(f"after training it prints status, {HEADLINES[task]} and W_hh_sparsity.")
    return textwrap.fill(description, 88), "\n".join(lines)


def _add_train_parser(tasks: argparse._SubParsersAction, task: str) -> None:
    description, epilog = _task_help(task)
    train = tasks.add_parser(
        task,
        help=f"train one {task} run",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", required=True, type=Path, help="YAML config file")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted path; value parsed as YAML); repeatable",
    )
    train.add_argument("--seed", type=_nonnegative_int, default=0, help="run seed (default 0)")
    train.add_argument("--out", required=True, type=Path, help="run directory (resumed if it has a checkpoint)")
    train.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geosparse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"geosparse {geosparse.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train one run and write DIR/metrics.json",
        description="Train one run of a task; `geosparse train TASK --help` lists that task's config keys.",
    )
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for task in TASKS:
        _add_train_parser(tasks, task)
    data = commands.add_parser("data", help="fetch and verify a dataset (exit 1 if that fails)")
    data.add_argument("dataset", choices=["wikitext2"])
    data.add_argument("--dest", type=Path, default=Path("data/wikitext-2"), help="target folder")
    data.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="URL_OR_PATH",
        help="try this instead of the configured mirrors (zip, folder, or parquet template with {split}); repeatable",
    )
    data.add_argument(
        "--config",
        type=Path,
        default=Path("config/data/wikitext2.yaml"),
        help="mirrors, checksum and expected line counts",
    )
    sweep = commands.add_parser("sweep", help="prune a finished run further, evaluate each level")
    sweep.add_argument("task", choices=["navigation"])  # sweep.py evaluates navigation runs only
    sweep.add_argument("--run", required=True, type=Path, help="finished run directory")
    sweep.add_argument("--levels", required=True, type=float, nargs="+", help="fractions in [0, 1)")
    sweep.add_argument("--out", required=True, type=Path, help="output JSON file")
    export = commands.add_parser("export", help="write a finished navigation run as a sparse inference model")
    export.add_argument("--run", required=True, type=Path, help="finished run directory")
    export.add_argument("--out", required=True, type=Path, help="output file (torch.save, weights_only-safe)")
    export.add_argument("--format", dest="layout", choices=EXPORT_LAYOUTS, default="csr", help="W_hh layout")
    export.add_argument(
        "--order",
        choices=ORDERS,
        default="none",
        help="renumber hidden units by moduli position (geometry) or keep them (none)",
    )
    export.add_argument("--blocksize", type=int, default=32, help="BSR block size (default 32)")
    bench = commands.add_parser(
        "benchmark-inference", help="time a finished navigation run's sparse inference formats (CPU)"
    )
    bench.add_argument("--run", required=True, type=Path, help="finished run directory")
    bench.add_argument("--out", required=True, type=Path, help="output JSON file")
    bench.add_argument("--batch", type=_positive_int, nargs="+", default=[1, 200], help="batch sizes")
    bench.add_argument("--steps", type=_positive_int, default=50, help="sequence length")
    bench.add_argument("--blocksize", type=_positive_int, default=32, help="BSR block size")
    bench.add_argument("--min-run-time", type=float, default=0.2, help="seconds per measurement")
    bench.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default 1)")
    return parser


def _train(args: argparse.Namespace) -> int:

    from geosparse.runio import select_device
    from geosparse.runs import new_run
    from geosparse.training import Trainer

    config = resolve(args.config, args.task, args.overrides)
    device = select_device(args.device)
    _check_run_dir(args.out)
    metrics = Trainer(new_run(config, args.seed, device), args.out).train()
    headline = HEADLINES[args.task]
    final = metrics["final"] or {}
    print(
        f"status={metrics['status']} {headline}={final.get(headline)} "
        f"W_hh_sparsity={final.get('W_hh_sparsity')} -> {args.out / 'metrics.json'}"
    )
    return 0


def _check_run_dir(out: Path) -> None:
    """``--out`` must be a folder, or creatable as one, that this process can write.
    Checked before any work and without creating anything (the Trainer creates it)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"--out {out}: cannot create the run folder ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {existing} is not writable")


def _sweep(args: argparse.Namespace) -> int:
    from geosparse.sweep import write_sweep

    write_sweep(args.run, args.levels, args.out)
    print(f"swept {args.run} at {sorted(set(args.levels))} -> {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from geosparse.sparse import export_run

    summary = export_run(args.run, args.out, args.layout, args.order, args.blocksize)
    blocks = summary["block_density"]["32"]
    print(
        f"exported {args.run} -> {args.out}: layouts={summary['layouts']} "
        f"W_hh_density={summary['W_hh_density']:.4f} bytes dense={summary['bytes_dense']} "
        f"stored={summary['bytes_stored']} 32x32-block density={blocks}"
    )
    return 0


def _benchmark_inference(args: argparse.Namespace) -> int:
    import torch

    from geosparse.inference_benchmark import benchmark_run
    from geosparse.runio import write_json

    torch.set_num_threads(args.threads)
    result = benchmark_run(
        args.run,
        args.batch,
        args.steps,
        args.blocksize,
        args.min_run_time,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    write_json(args.out, result)
    print(f"timed {len(result['rows'])} cases of {args.run} -> {args.out}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from geosparse.data.wikitext2 import DataError, Wikitext2Spec, fetch

    spec = Wikitext2Spec.load(args.config)
    try:
        fetch(args.dest, spec, args.source, log=lambda message: print(message, file=sys.stderr))
    except DataError as error:
        print(f"geosparse: error: {error}", file=sys.stderr)
        return 1
    print(f"WikiText-2 verified in {args.dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {
            "train": _train,
            "sweep": _sweep,
            "data": _data,
            "export": _export,
            "benchmark-inference": _benchmark_inference,
        }[args.command](args)
    except InputError as error:  # config errors included; other errors are bugs: traceback
        print(f"geosparse: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
