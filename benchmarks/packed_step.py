"""Packed runs: does training K navigation runs of one shape in one process, with batched
products, pay? (Measured before shipping anything behind it.)

Times forward + loss + backward of the navigation model (the matrix products that are
95 % of a paper-size step, docs/training_performance.md) for K runs of the same shape:

- ``sequential``: K ``NavigationRNN`` modules (``nn.RNN``: cuDNN on a GPU), one after the
  other, each with its own weights and batch, as K separate trainings run them;
- ``packed``: the same K runs' weights stacked along a leading run axis and one batched
  Elman recurrence, ``h_t = relu(x_t W_ih^T + h_{t-1} W_hh^T)`` as ``torch.baddbmm``
  per time step, autograd through it.

First it checks that the packed losses and gradients equal the sequential ones (float32,
TF32 off; the largest relative difference is printed), then prints one CSV row per K:
ms per step of all K runs, each way, and the speedup. The optimizer, clipping and masks
(0.5-1 % of a paper-size step) are not timed: they cost the same either way.

    python benchmarks/packed_step.py --config config/navigation/default.yaml --runs 1 2 --steps 2
    python benchmarks/packed_step.py --device cuda --precision tf32 --runs 1 2 4 8   # on a GPU

Packing is worth shipping behind a config key only if it gives >= 1.5x at paper size
(config/navigation/paper.yaml, the default ``--config``) on the GPU that trains it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from train_step import print_last_row, write_rows

from geosparse.config import resolve
from geosparse.precision import PRECISIONS, autocast
from geosparse.precision import configure as configure_precision
from geosparse.runio import describe_device, select_device
from geosparse.tasks.navigation import NavigationRNN, cross_entropy


def make_batch(k: int, seq: int, batch: int, n_place_cells: int, device: torch.device, seed: int = 0) -> Batch:
    """Velocity ``(K, T, B, 2)``, initial place code ``(K, B, Np)`` and target codes
    ``(K, T, B, Np)`` (softmax-normalised, as place-cell codes are), one slice per run."""
    gen = torch.Generator().manual_seed(seed)
    velocity = 0.1 * torch.randn(k, seq, batch, 2, generator=gen)
    init_code = torch.randn(k, batch, n_place_cells, generator=gen).softmax(-1)
    target = torch.randn(k, seq, batch, n_place_cells, generator=gen).softmax(-1)
    return velocity.to(device), init_code.to(device), target.to(device)


def make_models(k: int, n_place_cells: int, n_hidden: int, device: torch.device) -> list[NavigationRNN]:
    """K independently initialised navigation models (seeds 0..K-1)."""
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(NavigationRNN(n_place_cells, n_hidden).to(device))
    return models


WEIGHTS = ("encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "decoder.weight")
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def stack_weights(models: list[NavigationRNN]) -> list[torch.Tensor]:
    """The K models' ``WEIGHTS`` as leaf tensors with a leading run axis: encoder
    ``(K, Ng, Np)``, W_ih ``(K, Ng, 2)``, W_hh ``(K, Ng, Ng)``, decoder ``(K, Np, Ng)``."""
    return [torch.stack([m.get_parameter(n).detach() for m in models]).requires_grad_(True) for n in WEIGHTS]


def packed_losses(
    weights: list[torch.Tensor], velocity: torch.Tensor, init_code: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Per-run cross-entropy ``(K,)`` of K stacked navigation models (``stack_weights``) on
    their own batches (``make_batch``), as ``NavigationRNN`` + ``cross_entropy`` give it."""
    encoder, w_ih, w_hh, decoder = weights
    k, seq, batch, _ = velocity.shape
    h = torch.bmm(init_code, encoder.transpose(1, 2))  # (K, B, Ng)
    drive = torch.bmm(velocity.reshape(k, seq * batch, 2), w_ih.transpose(1, 2)).reshape(k, seq, batch, -1)
    recurrent = w_hh.transpose(1, 2)
    states = []
    for t in range(seq):
        h = torch.relu(torch.baddbmm(drive[:, t], h, recurrent))
        states.append(h)
    hidden = torch.stack(states, 1).reshape(k, seq * batch, -1)  # (K, T*B, Ng)
    logits = torch.bmm(hidden, decoder.transpose(1, 2)).float()  # (K, T*B, Np)
    codes = target.reshape(k, seq * batch, -1)
    return -(codes * torch.log_softmax(logits, dim=-1)).sum(-1).mean(-1)


def sequential_losses(
    models: list[NavigationRNN], velocity: torch.Tensor, init_code: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Per-run cross-entropy ``(K,)``, each model on its own batch."""
    return torch.stack([cross_entropy(m(velocity[i], init_code[i]).float(), target[i]) for i, m in enumerate(models)])


def sequential_step(models: list[NavigationRNN], batch: Batch, precision: str, device: torch.device) -> None:
    """Forward + backward of K runs one after the other (each its own graph, as K trainings)."""
    velocity, init_code, target = batch
    for i, model in enumerate(models):
        model.zero_grad(set_to_none=True)
        with autocast(precision, device):
            loss = cross_entropy(model(velocity[i], init_code[i]).float(), target[i])
        loss.backward()


def packed_step(weights: list[torch.Tensor], batch: Batch, precision: str, device: torch.device) -> None:
    """Forward + backward of K runs in one batched graph (the sum of per-run losses has
    each run's own gradient)."""
    for w in weights:
        w.grad = None
    with autocast(precision, device):
        loss = packed_losses(weights, *batch).sum()
    loss.backward()


def max_relative_difference(models: list[NavigationRNN], weights: list[torch.Tensor], batch: Batch) -> float:
    """Largest |packed - sequential| / max|sequential| over the per-run losses and the
    gradients of all four weight matrices (float32)."""
    seq_losses = sequential_losses(models, *batch)
    seq_losses.sum().backward()
    packed = packed_losses(weights, *batch)
    packed.sum().backward()
    pairs = [(packed.detach(), seq_losses.detach())]
    for w, name in zip(weights, WEIGHTS, strict=True):
        pairs.append((w.grad, torch.stack([m.get_parameter(name).grad for m in models])))
    for m in models:
        m.zero_grad(set_to_none=True)
    return max(((a - b).abs().max() / b.abs().max()).item() for a, b in pairs)


def seconds_per_step(step, args: tuple, steps: int, warmup: int, device: torch.device) -> float:
    """Wall seconds per call of ``step(*args)`` over ``steps`` calls after ``warmup``."""
    for _ in range(warmup):
        step(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config/navigation/paper.yaml"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    config = resolve(args.config, "navigation", [])
    device = select_device(args.device)
    n_hidden, n_place_cells = config["model"]["n_hidden"], config["place_cells"]["n"]
    seq, batch = config["trajectory"]["sequence_length"], config["trajectory"]["batch_size"]

    configure_precision("fp32")  # the equality check: float32, TF32 off
    check_k = min(2, max(args.runs))
    models = make_models(check_k, n_place_cells, n_hidden, device)
    check_batch = make_batch(check_k, seq, batch, n_place_cells, device)
    difference = max_relative_difference(models, stack_weights(models), check_batch)
    print(f"packed vs sequential, K={check_k}, float32: max relative difference {difference:.2e}", file=sys.stderr)

    configure_precision(args.precision)
    rows = []
    for k in args.runs:
        models = make_models(k, n_place_cells, n_hidden, device)
        weights = stack_weights(models)
        data = make_batch(k, seq, batch, n_place_cells, device)
        timing = (args.steps, args.warmup, device)
        sequential = seconds_per_step(sequential_step, (models, data, args.precision, device), *timing)
        packed = seconds_per_step(packed_step, (weights, data, args.precision, device), *timing)
        rows.append(
            {
                "config": args.config.name,
                "device": describe_device(device),
                "precision": args.precision,
                "n_hidden": n_hidden,
                "batch": batch,
                "seq": seq,
                "runs": k,
                "sequential_ms": round(1000 * sequential, 2),
                "packed_ms": round(1000 * packed, 2),
                "speedup": round(sequential / packed, 3),
                "max_rel_difference_fp32": f"{difference:.2e}",
            }
        )
        print_last_row(rows)
        del models, weights, data
    write_rows(rows, args.csv)


if __name__ == "__main__":
    main()
