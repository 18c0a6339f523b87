"""Wires the adding problem into the training driver (one mini-batch per step).

The training, validation and test sets are fixed tensors generated from the run seed;
an epoch is one pass over the training set in a fresh random order (own generator,
checkpointed, so a resumed run sees the same batches). Every generator is a CPU one and
the data are moved to the device afterwards: the same sets and order on every device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geosparse.pruning import w_hh_sparsity
from geosparse.regularizer import from_config as regularizer_from_config
from geosparse.runio import derive_seed, finite_or_none, generator_state
from geosparse.tasks.adding import BASELINE_MSE, AddingRNN, adding_data


class AddingTask:
    """Data, regularizer on W_hh and batch order of one adding-problem run (``Task``)."""

    data_description = None
    lr_plateau_key = None
    task_loss_key = "mse"
    chance_loss = BASELINE_MSE  # MSE of always predicting 1 (divergence rule)

    def __init__(self, config: dict, seed: int, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        data = config["data"]
        self.data = {}
        for split in ("train", "valid", "test"):
            generator = torch.Generator().manual_seed(derive_seed(seed, f"adding-{split}"))
            split_data = adding_data(data[f"{split}_samples"], data["length"], generator)
            self.data[split] = tuple(tensor.to(device) for tensor in split_data)
        self.batch_size = config["training"]["batch_size"]
        self.steps_per_epoch = math.ceil(data["train_samples"] / self.batch_size)
        self.regularizer = regularizer_from_config(
            config["regularizer"], config["model"]["n_hidden"], derive_seed(seed, "moduli")
        ).to(device)
        self.regularizers = nn.ModuleList([self.regularizer])

    def build_model(self) -> AddingRNN:
        model = self.config["model"]
        return AddingRNN(model["n_hidden"], model["activation"])

    def start_phase(self, phase: str) -> None:
        self.order_generator = torch.Generator()
        self.order_generator.manual_seed(derive_seed(self.seed, f"order-{phase}"))
        self.cursor = self.steps_per_epoch  # draws a fresh order at the first step
        self.order: torch.Tensor | None = None  # the epoch's order, on the CPU (saved)
        self.device_order: torch.Tensor | None = None  # its copy on the device

    def optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.config["training"]["lr"])

    def train_step(self, model: AddingRNN) -> dict[str, torch.Tensor]:
        if self.cursor >= self.steps_per_epoch:
            self._set_order(torch.randperm(self.config["data"]["train_samples"], generator=self.order_generator))
            self.cursor = 0
        rows = self.device_order[self.cursor * self.batch_size : (self.cursor + 1) * self.batch_size]
        self.cursor += 1
        inputs, targets = self.data["train"]
        mse = nn.functional.mse_loss(model(inputs[:, rows]), targets[rows])
        penalty = self.regularizer.reg(model.recurrent_weight())
        return {"loss": mse + penalty, "mse": mse.detach(), "penalty": penalty.detach()}

    def _set_order(self, order: torch.Tensor | None) -> None:
        """The epoch's batch order, copied to the device once (not one copy per step)."""
        self.order = order
        self.device_order = None if order is None else order.to(self.device)

    @torch.no_grad()
    def mse(self, model: AddingRNN, split: str) -> float | None:
        """Mean squared error of ``model`` over a whole split (None if not finite)."""
        model.eval()
        inputs, targets = self.data[split]
        return finite_or_none(float(nn.functional.mse_loss(model(inputs), targets)))

    def validate(self, model: AddingRNN) -> dict[str, float | None]:
        return {"val_mse": self.mse(model, "valid")}

    @torch.no_grad()
    def evaluate(self, model: AddingRNN) -> dict:
        """Test MSE next to the constant-prediction baseline."""
        test = self.mse(model, "test")
        targets = self.data["test"][1]
        w_hh = model.recurrent_weight()
        return {
            "test_mse": test,
            "baseline_mse": BASELINE_MSE,
            "baseline_mse_measured": float(((targets - 1.0) ** 2).mean()),
            "beats_baseline": test is not None and test < BASELINE_MSE,
            "val_mse": self.mse(model, "valid"),
            "W_hh_sparsity": w_hh_sparsity([w_hh]),
        }

    def state_dict(self) -> dict:
        return {
            "order_generator": self.order_generator.get_state(),
            "cursor": self.cursor,
            "order": self.order,
            "regularizer": self.regularizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.order_generator.set_state(generator_state(state["order_generator"]))
        self.cursor = state["cursor"]
        self._set_order(None if state["order"] is None else state["order"].cpu())
        self.load_regularizers(state)

    def load_regularizers(self, state: dict) -> None:
        self.regularizer.load_state_dict(state["regularizer"])
