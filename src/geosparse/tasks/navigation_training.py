"""Wires the navigation task into the training driver (one forward pass per step)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.profiler import record_function

from geosparse.pruning import w_hh_sparsity
from geosparse.regularizer import from_config as regularizer_from_config
from geosparse.runio import derive_seed
from geosparse.tasks.navigation import (
    NavigationRNN,
    PlaceCells,
    TrajectoryGenerator,
    cross_entropy,
    decoding_error_cm,
)

SMALL_WEIGHT = 1e-3
"""The paper's stated validation threshold on |W_hh| (reported as a fraction)."""
TRAINING_ERROR_TRAJECTORIES = 10
"""The training error (a logged statistic) is decoded on the first this-many trajectories
of each batch, every time step: 18,000 positions per default epoch, and a tenth of the
top-3 decoding's cost (docs/training_performance.md). Training itself does not use it."""


class NavigationTask:
    """Place cells, regularizer and trajectory streams of one navigation run (``Task``)."""

    steps_per_epoch = None  # training.steps_per_epoch
    data_description = None
    lr_plateau_key = None
    task_loss_key = "task_loss"

    def __init__(self, config: dict, seed: int, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        pc = config["place_cells"]
        self.place_cells = PlaceCells(
            n=pc["n"],
            sigma=pc["sigma"],
            surround_scale=pc["surround_scale"],
            dog=pc["dog"],
            box=(pc["box_width"], pc["box_height"]),
            seed=pc["seed"],
            device=device,
        )
        self.chance_loss = math.log(pc["n"])  # uniform code over the place cells (divergence rule)
        self.regularizer = regularizer_from_config(
            config["regularizer"], config["model"]["n_hidden"], derive_seed(seed, "moduli")
        ).to(device)
        self.regularizers = nn.ModuleList([self.regularizer])
        self.stream: TrajectoryGenerator | None = None

    def build_model(self) -> NavigationRNN:
        model = self.config["model"]
        return NavigationRNN(self.config["place_cells"]["n"], model["n_hidden"], model["activation"])

    def _stream(self, purpose: str) -> TrajectoryGenerator:
        traj = self.config["trajectory"]
        return TrajectoryGenerator(
            self.place_cells,
            traj["sequence_length"],
            traj["batch_size"],
            seed=derive_seed(self.seed, purpose),
            chunk=traj["chunk"],
        )

    def start_phase(self, phase: str) -> None:
        self.stream = self._stream(f"train-{phase}")

    def optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        training = self.config["training"]
        # foreach (multi-tensor) AdamW: bit-identical to the per-tensor loop (test), and
        # what torch picks on CUDA anyway; fused=True is faster but not equal
        # (docs/training_performance.md, "Optimizer").
        return torch.optim.AdamW(params, lr=training["lr"], weight_decay=training["weight_decay"], foreach=True)

    def train_step(self, model: NavigationRNN) -> dict[str, torch.Tensor]:
        with record_function("geosparse:batch (trajectories, place codes)"):
            batch = self.stream.next_batch()
        with record_function("geosparse:forward (RNN, read-out)"):
            logits = model(batch.velocity, batch.init_code)
        with record_function("geosparse:loss (cross-entropy, moduli penalty)"):
            task_loss = cross_entropy(logits, batch.target_code)
            penalty = self.regularizer.reg(model.rnn.weight_hh_l0)
        with torch.no_grad(), record_function("geosparse:training error (decoding)"):
            some = slice(0, TRAINING_ERROR_TRAJECTORIES)
            error = decoding_error_cm(logits[:, some], batch.position[:, some], self.place_cells)
        return {
            "loss": task_loss + penalty,
            "task_loss": task_loss.detach(),
            "penalty": penalty.detach(),
            "error_cm": error,
        }

    def validate(self, model: NavigationRNN) -> dict[str, float | None]:
        return {}

    @torch.no_grad()
    def evaluate(self, model: NavigationRNN) -> dict:
        """Error (cm) and loss over fresh batches of a dedicated evaluation stream.

        The rule: pruned weights are exact zeros (the masks); if
        ``evaluation.zero_threshold`` > 0, |W_hh| below it is also zeroed, on a copy.
        """
        threshold = self.config["evaluation"]["zero_threshold"]
        if threshold > 0:
            model = copy.deepcopy(model)
            w = model.rnn.weight_hh_l0
            w.mul_(w.abs() >= threshold)
        model.eval()
        stream = self._stream("evaluation")
        errors, losses = [], []
        for _ in range(self.config["evaluation"]["batches"]):
            batch = stream.next_batch()
            logits = model(batch.velocity, batch.init_code)
            errors.append(decoding_error_cm(logits, batch.position, self.place_cells))
            losses.append(cross_entropy(logits, batch.target_code))
        w_hh = model.rnn.weight_hh_l0
        return {
            "error_cm": float(torch.stack(errors).mean()),
            "loss": float(torch.stack(losses).mean()),
            "W_hh_sparsity": w_hh_sparsity([w_hh]),
            "W_hh_fraction_below_1e-3": float((w_hh.abs() < SMALL_WEIGHT).float().mean()),
            "eval_rule": (
                "pruning masks only: pruned weights are exact zeros"
                if threshold == 0
                else f"pruning masks, plus |W_hh| < {threshold:g} set to zero"
            ),
        }

    def state_dict(self) -> dict:
        return {"stream": self.stream.state_dict(), "regularizer": self.regularizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])
        self.load_regularizers(state)

    def load_regularizers(self, state: dict) -> None:
        self.regularizer.load_state_dict(state["regularizer"])
