"""Wires the adding problem into the training driver (one mini-batch per step).

The training, validation and test sets are fixed tensors generated from the run seed;
an epoch is one pass over the training set in a fresh random order (own generator,
checkpointed, so a resumed run sees the same batches).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geosparse.pruning import MagnitudePruner
from geosparse.regularizer import from_config as regularizer_from_config
from geosparse.runio import derive_seed
from geosparse.tasks.adding import BASELINE_MSE, AddingRNN, adding_data


class AddingRun:
    """Data, model, regularizer on W_hh, pruner and batch order of one adding-problem run."""

    def __init__(self, config: dict, seed: int, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        data, model_cfg = config["data"], config["model"]
        self.data = {}
        for split in ("train", "valid", "test"):
            generator = torch.Generator(device=device)
            generator.manual_seed(derive_seed(seed, f"adding-{split}"))
            self.data[split] = adding_data(data[f"{split}_samples"], data["length"], generator)
        self.batch_size = config["training"]["batch_size"]
        self.steps_per_epoch = math.ceil(data["train_samples"] / self.batch_size)
        self.chance_loss = BASELINE_MSE  # MSE of always predicting 1 (divergence rule)
        self.task_loss_key = "mse"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model-init"))
            self.model = AddingRNN(model_cfg["n_hidden"], model_cfg["activation"])
        self.model.to(device)
        self.regularizer = regularizer_from_config(
            config["regularizer"], model_cfg["n_hidden"], derive_seed(seed, "moduli")
        ).to(device)
        self.pruner = MagnitudePruner(self.model.prunable(config["pruning"]["tensors"]),
                                      scope=config["pruning"]["scope"])
        self.trainable: list[nn.Parameter] = [*self.model.parameters(),
                                              *self.regularizer.parameters()]
        self.start_phase("sparse")

    def start_phase(self, phase: str) -> None:
        self.order_generator = torch.Generator()
        self.order_generator.manual_seed(derive_seed(self.seed, f"order-{phase}"))
        self.cursor = self.steps_per_epoch  # draws a fresh order at the first step
        self.order: torch.Tensor | None = None

    def new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.trainable, lr=self.config["training"]["lr"])

    def train_step(self) -> dict[str, torch.Tensor]:
        if self.cursor >= self.steps_per_epoch:
            self.order = torch.randperm(self.config["data"]["train_samples"],
                                        generator=self.order_generator)
            self.cursor = 0
        rows = self.order[self.cursor * self.batch_size : (self.cursor + 1) * self.batch_size]
        self.cursor += 1
        inputs, targets = self.data["train"]
        rows = rows.to(self.device)
        mse = nn.functional.mse_loss(self.model(inputs[:, rows]), targets[rows])
        penalty = self.regularizer.reg(self.model.recurrent_weight())
        return {"loss": mse + penalty, "mse": mse.detach(), "penalty": penalty.detach()}

    def after_step(self) -> None:
        self.regularizer.project_()

    @torch.no_grad()
    def mse(self, split: str) -> float | None:
        """Mean squared error of the current model over a whole split (None if not finite)."""
        self.model.eval()
        inputs, targets = self.data[split]
        value = float(nn.functional.mse_loss(self.model(inputs), targets))
        return value if math.isfinite(value) else None

    def end_epoch(self, optimizer: torch.optim.Optimizer) -> dict[str, float | None]:
        return {"val_mse": self.mse("valid")}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test MSE next to the constant-prediction baseline, and measured sparsity."""
        test = self.mse("test")
        targets = self.data["test"][1]
        w_hh = self.model.recurrent_weight()
        report = self.pruner.report()
        return {
            "test_mse": test,
            "baseline_mse": BASELINE_MSE,
            "baseline_mse_measured": float(((targets - 1.0) ** 2).mean()),
            "beats_baseline": test is not None and test < BASELINE_MSE,
            "val_mse": self.mse("valid"),
            "W_hh_sparsity": float((w_hh == 0).float().mean()),
            "sparsity": report["global"]["sparsity"],
            "sparsity_report": report,
        }

    def state_dict(self) -> dict:
        return {"order_generator": self.order_generator.get_state(), "cursor": self.cursor,
                "order": self.order, "regularizer": self.regularizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.order_generator.set_state(state["order_generator"])
        self.cursor, self.order = state["cursor"], state["order"]
        self.regularizer.load_state_dict(state["regularizer"])
