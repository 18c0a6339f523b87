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
import math
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import geosparse
from geosparse.config import InputError, resolve
from geosparse.data import WIKITEXT2_SPEC
from geosparse.outputs import WriteError, check_out_dir, check_out_file
from geosparse.rundir import Interrupted
from geosparse.sparse.formats import EXPORT_LAYOUTS, ORDERS
from geosparse.tasks import TASKS


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default after its help (not for required options, nor for an
    empty default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default is None or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


class _RawHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """As ``_HelpFormatter``, with the description and epilog kept as written."""


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """argparse type: an integer in [low, high] (sizes that allocate are bounded)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    """argparse type: a finite duration in (0, MAX_SECONDS]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"must be a finite number in (0, {MAX_SECONDS}], got {text}")
    return value


def _out_path(text: str) -> Path:
    """argparse type of ``--out``: a non-empty path (``''`` would be the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


SEED_MAX = 2**63 - 1
"""Largest run seed (``derive_seed`` hashes it; torch seeds are 64-bit)."""
MAX_BATCH, MAX_STEPS, MAX_BLOCKSIZE, MAX_THREADS, MAX_SECONDS = 4096, 1000, 16384, 1024, 60.0
"""Bounds of benchmark-inference's and export's sizes (inputs of batch x steps x Np floats)."""


def _task_help(task: str) -> tuple[str, str]:
    """(description, epilog) of ``geosparse train TASK --help``, from the task's run schema:
    what a run is, its shipped configs, and every config section with its keys."""
    from geosparse.config import load_schema

    schema = load_schema(task)
    configs = sorted(p.name for p in (Path("config") / task).glob("*.yaml"))
    description = " ".join(schema["description"].split())
    if configs:
        description += f" Shipped configs (from the repository root): config/{task}/{{{','.join(configs)}}}."
    lines = [f"config keys (--set SECTION.KEY=VALUE; meanings: docs/configuration.md, schemas/{task}.schema.yaml):"]
    for section, spec in schema["properties"].items():
        if "$ref" in spec:  # a shared section, e.g. {$ref: "regularizer.schema.yaml"}
            spec = load_schema(spec["$ref"].removesuffix(".schema.yaml"))
        keys = sorted(spec.get("properties", {}))
        lines.append(f"  {section}: {', '.join(keys)}" if keys else f"  {section}")
    lines.append(f"after training it prints status, {TASKS[task].headline} and W_hh_sparsity.")
    return textwrap.fill(description, 88), "\n".join(lines)


def _add_train_parser(tasks: argparse._SubParsersAction, task: str) -> None:
    description, epilog = _task_help(task)
    train = tasks.add_parser(
        task,
        help=f"train one {task} run",
        description=description,
        epilog=epilog,
        formatter_class=_RawHelpFormatter,
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
    train.add_argument("--seed", type=_int_in(0, SEED_MAX), default=0, help="run seed")
    train.add_argument("--out", required=True, type=_out_path, help="run directory (resumed if it has a checkpoint)")
    train.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geosparse", description=__doc__, formatter_class=_RawHelpFormatter)
    parser.add_argument("--version", action="version", version=f"geosparse {geosparse.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train one run and write DIR/metrics.json",
        description="Train one run of a task (prune on the schedule, evaluate, optionally retrain the lottery "
        "ticket); `geosparse train TASK --help` lists that task's config keys.",
        formatter_class=_HelpFormatter,
    )
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for task in TASKS:
        _add_train_parser(tasks, task)
    data = commands.add_parser(
        "data",
        help="fetch and verify a dataset (exit 1 if that fails)",
        description="Fetch WikiText-2 (v1, tokenized) from the first mirror that works, verify its checksum and "
        "line counts, and write DEST/wiki.{train,valid,test}.tokens and DEST/source.json. Works from any "
        "directory; nothing is written unless everything verified.",
        formatter_class=_HelpFormatter,
    )
    data.add_argument("dataset", choices=["wikitext2"])
    data.add_argument("--dest", type=Path, default=Path("data/wikitext-2"), help="target folder (relative: to here)")
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
        help=f"YAML of the mirrors, checksum and expected line counts (default: {WIKITEXT2_SPEC.name}, "
        "shipped with geosparse)",
    )
    sweep = commands.add_parser(
        "sweep",
        help="prune a finished run further, evaluate each level",
        description="Post-hoc pruning sweep: prune a finished navigation run's sparse model by global magnitude "
        "to each level and evaluate it (levels at or below its own sparsity: the model as trained).",
        formatter_class=_HelpFormatter,
    )
    sweep.add_argument("task", choices=["navigation"])  # sweep.py evaluates navigation runs only
    sweep.add_argument("--run", required=True, type=Path, help="finished run directory")
    sweep.add_argument("--levels", required=True, type=float, nargs="+", help="fractions in [0, 1)")
    sweep.add_argument("--out", required=True, type=_out_path, help="output JSON file")
    export = commands.add_parser(
        "export",
        help="write a finished navigation run as a sparse inference model",
        description="Write a finished navigation run as a sparse inference model (W_hh in CSR or BSR, "
        "encoder/decoder sparse where they are at most 25 % dense); load it with geosparse.sparse.load_sparse.",
        formatter_class=_HelpFormatter,
    )
    export.add_argument("--run", required=True, type=Path, help="finished run directory")
    export.add_argument("--out", required=True, type=_out_path, help="output file (torch.save, weights_only-safe)")
    export.add_argument("--format", dest="layout", choices=EXPORT_LAYOUTS, default="csr", help="W_hh layout")
    export.add_argument(
        "--order",
        choices=ORDERS,
        default="none",
        help="renumber hidden units by moduli position (geometry) or keep them (none)",
    )
    export.add_argument("--blocksize", type=_int_in(1, MAX_BLOCKSIZE), default=32, help="BSR block size")
    bench = commands.add_parser(
        "benchmark-inference",
        help="time a finished navigation run's sparse inference formats (CPU)",
        description="Time one step and a sequence of a finished navigation run's model in every inference format "
        "on the CPU, check that each format's outputs match the training model's, and write the latencies, "
        "weight bytes and block densities as JSON.",
        formatter_class=_HelpFormatter,
    )
    bench.add_argument("--run", required=True, type=Path, help="finished run directory")
    bench.add_argument("--out", required=True, type=_out_path, help="output JSON file")
    bench.add_argument(
        "--batch", type=_int_in(1, MAX_BATCH), nargs="+", default=[1, 200], help=f"batch sizes (<= {MAX_BATCH})"
    )
    bench.add_argument("--steps", type=_int_in(1, MAX_STEPS), default=50, help=f"sequence length (<= {MAX_STEPS})")
    bench.add_argument("--blocksize", type=_int_in(1, MAX_BLOCKSIZE), default=32, help="BSR block size")
    bench.add_argument(
        "--min-run-time", type=_seconds, default=0.2, help=f"seconds per measurement, in (0, {MAX_SECONDS:g}]"
    )
    bench.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=1, help="torch threads")
    return parser


def _train(args: argparse.Namespace) -> int:

    from geosparse.host_memory import keep_freed_memory
    from geosparse.runio import select_device
    from geosparse.runs import new_run
    from geosparse.training import Trainer

    keep_freed_memory()  # no page faults for each step's temporaries; results unchanged
    config = resolve(args.config, args.task, args.overrides)
    device = select_device(args.device)
    out = check_out_dir(args.out)
    metrics = Trainer(new_run(config, args.seed, device), out, requested_device=args.device).train()
    headline = TASKS[args.task].headline
    final = metrics["final"] or {}
    print(
        f"status={metrics['status']} {headline}={final.get(headline)} "
        f"W_hh_sparsity={final.get('W_hh_sparsity')} -> {args.out / 'metrics.json'}"
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from geosparse.sweep import write_sweep

    write_sweep(args.run, args.levels, check_out_file(args.out))
    print(f"swept {args.run} at {sorted(set(args.levels))} -> {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from geosparse.sparse import export_run

    summary = export_run(args.run, check_out_file(args.out), args.layout, args.order, args.blocksize)
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

    out = check_out_file(args.out)
    torch.set_num_threads(args.threads)
    result = benchmark_run(
        args.run,
        args.batch,
        args.steps,
        args.blocksize,
        args.min_run_time,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    write_json(out, result)
    print(f"timed {len(result['rows'])} cases of {args.run} -> {args.out}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from geosparse.data.wikitext2 import DataError, Wikitext2Spec, fetch

    spec = Wikitext2Spec.load(args.config or WIKITEXT2_SPEC)
    try:
        fetch(args.dest, spec, args.source, log=lambda message: print(message, file=sys.stderr))
    except DataError as error:
        print(f"geosparse: error: {error}", file=sys.stderr)
        return 1
    print(f"WikiText-2 verified in {args.dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a command: exit 0; 2 for bad input (the message alone); 1 when writing an output
    failed (disk full, ...); 128 + the signal when training stopped on SIGINT / SIGTERM
    after checkpointing (130, 143: its message was logged)."""
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
    except WriteError as error:
        print(f"geosparse: error: {error.strerror}", file=sys.stderr)
        return 1
    except Interrupted as stopped:
        return 128 + stopped.signum
    except KeyboardInterrupt:  # Ctrl-C outside training (loading, evaluating a finished run)
        print("geosparse: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
