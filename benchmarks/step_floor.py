"""The navigation training step against the machine's matrix-product limit, one thread.

1. Counts the step's floating-point operations by formula (its matrix products: the
   encoder, the input projection, T recurrent products and the read-out; the backward
   pass computes the weight gradients and the gradients of every input that needs one)
   and checks the count with ``torch.utils.flop_counter.FlopCounterMode`` on a real step.
2. Measures the single-thread float32 matrix-product rate at the step's shapes
   (``torch.utils.benchmark``); the floor is the time the step's products would take at
   those rates, with nothing else in the step.
3. Times Trainer steps (``geosparse.training.optimization_step``) with the recurrence as
   ``nn.RNN`` (the step before the batched recurrence) and as
   ``geosparse.recurrence.relu_rnn`` (what a CPU run uses), and, with ``--authors DIR``,
   one training step of the authors' navigation code (``DIR`` = the ``navigation`` folder
   of github.com/mackeynations/Moduli-regularizers, unchanged; ``np.Inf``, gone in numpy 2,
   is aliased to ``np.inf`` before it is imported) at the same size.

Measurements alternate (floor, nn.RNN, relu_rnn, authors; then again) for ``--rounds``
rounds, so that a busy machine slows all of them alike; the table gives medians and
ranges. ``--keep-freed-memory`` sets malloc's thresholds as ``geosparse train`` does
(``geosparse.host_memory``), for all rows alike. ``--clock cpu`` (the default) times
with the thread's CPU clock, which leaves out the time the thread waits for a core on a
shared machine; ``--clock wall`` uses wall time.

    python benchmarks/step_floor.py --config config/navigation/default.yaml
    python benchmarks/step_floor.py --config config/navigation/default.yaml --authors /tmp/authors/navigation
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.utils.benchmark as torch_benchmark
from torch.utils.flop_counter import FlopCounterMode

from geosparse.config import resolve
from geosparse.host_memory import keep_freed_memory
from geosparse.runio import describe_device
from geosparse.runs import new_run
from geosparse.training import optimization_step

CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
VELOCITY_DIM = 2


@dataclass(frozen=True)
class Product:
    """``count`` matrix products of an ``(m, k)`` by a ``(k, n)`` matrix in one step."""

    name: str
    m: int
    k: int
    n: int
    forward: int
    backward: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n * (self.forward + self.backward)


def step_products(config: dict) -> list[Product]:
    """The matrix products of one navigation training step (``NavigationRNN``).

    Forward: encoder ``(B, Np) x (Np, Ng)``; input projection ``(T B, 2) x (2, Ng)``; T
    recurrent products ``(B, Ng) x (Ng, Ng)`` (h0 comes from the encoder, so all T steps
    multiply W_hh); read-out ``(T B, Ng) x (Ng, Np)``. Backward: a weight gradient for each
    product, and an input gradient where the input needs one (the hidden states: the
    recurrent and read-out products; not the place code or the velocities).
    """
    steps, batch = config["trajectory"]["sequence_length"], config["trajectory"]["batch_size"]
    hidden, cells = config["model"]["n_hidden"], config["place_cells"]["n"]
    return [
        Product("encoder", batch, cells, hidden, forward=1, backward=1),
        Product("input projection", steps * batch, VELOCITY_DIM, hidden, forward=1, backward=1),
        Product("recurrent (W_hh)", batch, hidden, hidden, forward=steps, backward=2 * steps),
        Product("read-out (decoder)", steps * batch, hidden, cells, forward=1, backward=2),
    ]


def counted_flops(step: Callable[[], None]) -> int:
    """Matrix-product FLOPs of one call of ``step``, counted by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def product_rate(product: Product, clock: Callable[[], float], min_time: float) -> float:
    """Single-thread float32 FLOP/s of ``product``'s shape (``torch.utils.benchmark``)."""
    a, b = torch.randn(product.m, product.k), torch.randn(product.k, product.n)
    timer = torch_benchmark.Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, timer=clock)
    return 2 * product.m * product.k * product.n / timer.blocked_autorange(min_run_time=min_time).median


def floor_seconds(products: list[Product], clock: Callable[[], float], min_time: float) -> tuple[float, dict]:
    """Time of the step's products at the measured rates, and the rate per product."""
    rates = {p.name: product_rate(p, clock, min_time) for p in products}
    return sum(p.flops / rates[p.name] for p in products), rates


class ProjectStep:
    """Trainer steps of a fresh run at ``sparsity``, recurrence by ``nn.RNN`` or not."""

    def __init__(self, config: dict, sparsity: float, batched_recurrence: bool) -> None:
        self.run = new_run(config, seed=0, device=torch.device("cpu"))
        self.run.task.start_phase("sparse")
        self.run.pruner.prune_to(sparsity)
        self.run.model.batched_recurrence = batched_recurrence
        self.optimizer = self.run.new_optimizer()
        self.training = config["training"]

    def __call__(self) -> None:
        optimization_step(self.run, self.optimizer, self.training["grad_clip"], self.training["precision"])


class AuthorsStep:
    """One training step of the authors' navigation code (``Trainer.train_step`` on the
    next batch of their generator) at the config's size, pruned to ``sparsity`` with
    their global L1 pruning, torus DoG regularizer as in their runs."""

    def __init__(self, directory: Path, config: dict, sparsity: float) -> None:
        if not hasattr(np, "Inf"):
            np.Inf = np.inf  # removed in numpy 2; their trainer.py initialises with it
        sys.path.insert(0, str(directory.resolve()))
        names = ("place_cells", "trajectory_generator", "model1", "trainer")
        modules = {name: importlib.import_module(name) for name in names}
        prune = importlib.import_module("torch.nn.utils.prune")
        self.workdir = tempfile.TemporaryDirectory(prefix="authors-step-")
        traj, pc = config["trajectory"], config["place_cells"]
        work = self.workdir.name
        options = types.SimpleNamespace(
            Ng=config["model"]["n_hidden"], Np=pc["n"], batch_size=traj["batch_size"],
            sequence_length=traj["sequence_length"], learning_rate=config["training"]["lr"],
            place_cell_rf=pc["sigma"], surround_scale=pc["surround_scale"], DoG=pc["dog"], periodic=False,
            box_width=pc["box_width"], box_height=pc["box_height"], device="cpu", activation="relu",
            RNN_type="RNN", regularizer="torus", regpower="DoG", permute=False, changeembed=False, regtype=1,
            invert=True, trainembed=False, weight_decay=config["regularizer"]["strength"],
            target_perc=100 * sparsity, save_dir=work + "/models/", save_repo=work + "/", savefile="bench",
            run_ID="bench",
        )  # fmt: skip
        np.random.seed(0)
        torch.manual_seed(0)
        with self._inside():
            Path("models").mkdir()
            cells = modules["place_cells"].PlaceCells(options)
            model = modules["model1"].RNN(options, cells)
            batches = modules["trajectory_generator"].TrajectoryGenerator(options, cells)
            self.trainer = modules["trainer"].Trainer(options, model, batches)
        weights = [(model.encoder, "weight"), (model.decoder, "weight")]
        weights += [(model.RNN, "weight_hh_l0"), (model.RNN, "weight_ih_l0")]
        prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=sparsity)
        model.train()
        self.batches = self.trainer.trajectory_generator.get_generator()
        self.options = options

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        """Their trainer saves its best model under ``models/`` of the working directory."""
        previous = os.getcwd()
        os.chdir(self.workdir.name)
        try:
            yield
        finally:
            os.chdir(previous)

    def __call__(self) -> None:
        with self._inside():
            inputs, pc_outputs, pos = next(self.batches)
            self.trainer.train_step(inputs, pc_outputs, pos, self.options)


def seconds_per_step(step: Callable[[], None], steps: int, clock: Callable[[], float]) -> float:
    started = clock()
    for _ in range(steps):
        step()
    return (clock() - started) / steps


def spread(values: list[float], scale: float = 1.0) -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    return f"{scale * statistics.median(values):.1f} ({scale * min(values):.1f}-{scale * max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--sparsity", type=float, default=0.9, help="pruned fraction of the timed models")
    parser.add_argument("--rounds", type=int, default=7, help="alternating measurement rounds")
    parser.add_argument("--steps", type=int, default=16, help="steps per measurement (one trajectory chunk)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rate-time", type=float, default=0.5, help="seconds per product-rate measurement")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--authors", type=Path, help="the authors' navigation folder (their repository)")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="raise malloc's thresholds as `geosparse train` does (for every row of this process)",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    if args.keep_freed_memory:
        keep_freed_memory()
    clock = CLOCKS[args.clock]
    config = resolve(args.config, "navigation", args.overrides)
    if config["training"]["precision"] != "fp32":
        parser.error("training.precision: the floor is measured for float32 products; allowed values: ['fp32']")
    products = step_products(config)
    flops = sum(p.flops for p in products)
    steps: dict[str, Callable[[], None]] = {
        "geosparse, nn.RNN recurrence (before)": ProjectStep(config, args.sparsity, batched_recurrence=False),
        "geosparse, relu_rnn recurrence (now)": ProjectStep(config, args.sparsity, batched_recurrence=True),
    }
    if args.authors:
        steps["authors' code (Moduli-regularizers)"] = AuthorsStep(args.authors, config, args.sparsity)

    memory = "kept (mallopt)" if args.keep_freed_memory else "default allocator"
    print(f"device: {describe_device(torch.device('cpu'))}; clock: {args.clock}; sparsity {args.sparsity}; {memory}")
    print("matrix products of one step (FLOP):")
    for p in products:
        shape = f"({p.m} x {p.k}) x ({p.k} x {p.n})"
        print(f"  {p.name:20s} {shape}, {p.forward} forward + {p.backward} backward: {p.flops / 1e9:.3f} G")
    print(f"  total by formula: {flops / 1e9:.3f} GFLOP")
    for name, step in list(steps.items())[:2]:
        print(f"  FlopCounterMode, one step of {name}: {counted_flops(step) / 1e9:.3f} GFLOP")

    for step in steps.values():
        for _ in range(args.warmup):
            step()
    floors, rates, times = [], [], {name: [] for name in steps}
    for round_ in range(args.rounds):
        floor, rate = floor_seconds(products, clock, args.rate_time)
        floors.append(floor)
        rates.append(rate)
        for name, step in steps.items():
            times[name].append(seconds_per_step(step, args.steps, clock))
        latest = ", ".join(f"{1e3 * t[-1]:.1f}" for t in times.values())
        print(f"round {round_ + 1}/{args.rounds}: floor {1e3 * floor:.1f} ms, steps (ms) {latest}", flush=True)

    print("\nsingle-thread float32 product rate, GFLOP/s, median (range):")
    for p in products:
        print(f"  {p.name:20s} {spread([r[p.name] for r in rates], 1e-9)}")
    header = f"step ({args.rounds} rounds x {args.steps} steps, 1 thread)"
    print(f"\n| {header} | ms per step, median (range) | share of the floor, median (range) | speed vs the authors |")
    print("|---|---|---|---|")
    print(f"| matrix-product floor ({flops / 1e9:.2f} GFLOP at the measured rates) | {spread(floors, 1e3)} | 100 % | |")
    authors = times.get("authors' code (Moduli-regularizers)")
    for name, values in times.items():
        shares = [f / t for f, t in zip(floors, values, strict=True)]
        versus = (
            ""
            if authors is None
            else f"{statistics.median([a / t for a, t in zip(authors, values, strict=True)]):.2f}x"
        )
        print(f"| {name} | {spread(values, 1e3)} | {spread(shares, 100)} % | {versus} |")


if __name__ == "__main__":
    main()
