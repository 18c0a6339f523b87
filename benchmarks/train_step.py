"""Navigation training throughput: steps/s for a config, dense and pruned, and where the
time of one step goes.

Times full training steps exactly as the Trainer runs them
(``geosparse.training.optimization_step``: trajectory batch, one forward pass, loss +
moduli penalty, backward, gradient clipping, AdamW step, mask application) after a
warm-up. Pruned models use masked dense matrices, so their speed matches dense:
sparsity saves nothing in training.

    python benchmarks/train_step.py --config config/navigation/default.yaml --profile
    python benchmarks/train_step.py --config config/navigation/paper.yaml --steps 3 --profile
    python benchmarks/train_step.py --config config/navigation/paper.yaml --device cuda --profile

Prints one CSV row per (config, sparsity): steps/s and ms per step (``--csv FILE``
also writes them). ``--profile`` then runs ``--profile-steps`` steps under
``torch.profiler`` and prints (1) the labelled phases of a step (``geosparse:*``
record_function ranges; time per step and share of the profiled total) and (2) the
operators with the most self time (CPU, or CUDA on a GPU).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

from geosparse.config import resolve
from geosparse.precision import configure as configure_precision
from geosparse.runio import describe_device, select_device
from geosparse.runs import Run, new_run
from geosparse.training import TRAIN_STEP_LABEL, optimization_step

LABEL = "geosparse:"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(run: Run, optimizer: torch.optim.Optimizer, training: dict, steps: int) -> None:
    """``steps`` Trainer steps with the config's ``training`` clipping and precision."""
    for _ in range(steps):
        optimization_step(run, optimizer, training["grad_clip"], training["precision"])
    _sync(run.device)


def seconds_per_step(run: Run, training: dict, steps: int, warmup: int) -> float:
    """Wall seconds per training step, averaged over ``steps`` after ``warmup`` steps."""
    optimizer = run.new_optimizer()
    run_steps(run, optimizer, training, warmup)
    started = time.perf_counter()
    run_steps(run, optimizer, training, steps)
    return (time.perf_counter() - started) / steps


def profile_table(run: Run, training: dict, steps: int) -> str:
    """Phases (``geosparse:*`` ranges) and top operators of ``steps`` profiled steps."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    on_gpu = run.device.type == "cuda"
    if on_gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    optimizer = run.new_optimizer()
    run_steps(run, optimizer, training, 1)
    with torch.profiler.profile(activities=activities) as prof:
        run_steps(run, optimizer, training, steps)
    events = prof.key_averages()
    labelled = sorted((e for e in events if e.key.startswith(LABEL)), key=lambda e: -e.cpu_time_total)
    # the train_step range encloses batch, forward, loss and error: shown, not summed
    total_us = sum(e.cpu_time_total for e in labelled if e.key != TRAIN_STEP_LABEL)
    lines = [f"phase (per step, {steps} profiled steps)          CPU ms    share"]
    for e in labelled:
        share = "" if e.key == TRAIN_STEP_LABEL else f"{100 * e.cpu_time_total / total_us:7.1f} %"
        lines.append(f"{e.key[len(LABEL) :]:45s} {e.cpu_time_total / steps / 1e3:9.2f} {share}")
    lines.append("")
    sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    lines.append(events.table(sort_by=sort_by, row_limit=12))
    return "\n".join(lines)


def print_last_row(rows: list[dict]) -> None:
    """Print the newest of ``rows`` as a CSV line (the header before the first)."""
    if len(rows) == 1:
        print(",".join(rows[0]))
    print(",".join(str(v) for v in rows[-1].values()), flush=True)


def write_rows(rows: list[dict], path: Path | None) -> None:
    """``rows`` as a CSV file at ``path`` (``--csv``; nothing without one)."""
    if path is None:
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.9])
    parser.add_argument("--profile", action="store_true", help="profile steps and print where the time goes")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    config = resolve(args.config, "navigation", args.overrides)
    device = select_device(args.device)
    training = config["training"]
    configure_precision(training["precision"])  # --set training.precision=bf16 to compare
    traj = config["trajectory"]
    rows = []
    for sparsity in args.sparsities:
        run = new_run(config, seed=0, device=device)
        run.task.start_phase("sparse")
        run.pruner.prune_to(sparsity)
        seconds = seconds_per_step(run, training, args.steps, args.warmup)
        rows.append(
            {
                "config": args.config.name,
                "device": describe_device(device),
                "n_hidden": config["model"]["n_hidden"],
                "n_place_cells": config["place_cells"]["n"],
                "batch": traj["batch_size"],
                "seq": traj["sequence_length"],
                "sparsity": sparsity,
                "precision": training["precision"],
                "steps_per_s": round(1 / seconds, 3),
                "ms_per_step": round(1000 * seconds, 2),
            }
        )
        print_last_row(rows)
        if args.profile:
            print(profile_table(run, training, args.profile_steps), flush=True)
    write_rows(rows, args.csv)


if __name__ == "__main__":
    main()
