"""Command line: ``geosparse train <task> --config FILE [--set k=v ...] --seed S --out DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geosparse.config import ConfigError, resolve

TASKS = ("navigation",)


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geosparse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one run and write DIR/metrics.json")
    train.add_argument("task", choices=TASKS)
    train.add_argument("--config", required=True, type=Path, help="YAML config file")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (dotted path; value parsed as YAML); repeatable")
    train.add_argument("--seed", type=_nonnegative_int, default=0, help="run seed (default 0)")
    train.add_argument("--out", required=True, type=Path, help="run directory (resumed if it has a checkpoint)")
    train.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    return parser


def _train(args: argparse.Namespace) -> int:
    import torch

    from geosparse.runio import select_device
    from geosparse.tasks.navigation_training import NavigationRun
    from geosparse.training import Trainer

    config = resolve(args.config, args.task, args.overrides)
    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    task = NavigationRun(config, args.seed, device)
    metrics = Trainer(task, config, args.seed, args.out, device).run()
    final = metrics["final"] or {}
    print(f"status={metrics['status']} error_cm={final.get('error_cm')} "
          f"W_hh_sparsity={final.get('W_hh_sparsity')} -> {args.out / 'metrics.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _train(args)
    except (ConfigError, ValueError) as error:
        print(f"geosparse: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
