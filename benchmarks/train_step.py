"""Navigation training throughput: steps/s for a config, dense and pruned.

Times full training steps (trajectory batch, one forward pass, loss + moduli penalty,
backward, AdamW step, mask application) after a warm-up. Pruned models use masked
dense matrices, so their speed should match dense: sparsity saves nothing here.

    python benchmarks/train_step.py --config config/navigation/default.yaml
    python benchmarks/train_step.py --config config/navigation/paper.yaml --steps 5
    python benchmarks/train_step.py --config config/navigation/paper.yaml --device cuda --profile

Prints one CSV row per (config, sparsity): steps/s and s per 1000 steps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from geosparse.config import resolve
from geosparse.runio import describe_device, select_device
from geosparse.tasks.navigation_training import NavigationRun


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(run: NavigationRun, steps: int, warmup: int) -> float:
    """Seconds per training step, averaged over ``steps`` after ``warmup`` steps."""
    optimizer = run.new_optimizer()
    run.start_phase("sparse")

    def step() -> None:
        loss = run.train_step()["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.pruner.apply_()

    for _ in range(warmup):
        step()
    _sync(run.device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(run.device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.9])
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of 3 steps")
    args = parser.parse_args()

    config = resolve(args.config, "navigation", args.overrides)
    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    print("config,device,n_hidden,n_place_cells,batch,seq,sparsity,steps_per_s,s_per_1000_steps")
    for sparsity in args.sparsities:
        run = NavigationRun(config, seed=0, device=device)
        run.pruner.prune_to(sparsity)
        seconds = time_steps(run, args.steps, args.warmup)
        traj = config["trajectory"]
        print(f"{args.config.name},{describe_device(device)},{config['model']['n_hidden']},"
              f"{config['place_cells']['n']},{traj['batch_size']},{traj['sequence_length']},"
              f"{sparsity},{1 / seconds:.2f},{1000 * seconds:.1f}")
        if args.profile:
            with torch.profiler.profile() as prof:
                time_steps(run, 3, 0)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
