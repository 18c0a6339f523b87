"""Task-independent training driver: pruning schedule, phases, checkpoints, metrics.

A run has the phase ``sparse`` (train while pruning on the schedule, then optional
fine-tuning epochs at the target) and optionally ``lottery`` (re-initialise at random,
keep the final masks, train for the same number of epochs). After each epoch the full
state (model, optimizer, masks, data-stream RNG, history) is checkpointed atomically;
a run started again with the same arguments resumes from there and ends with the same
metrics as an uninterrupted run. An epoch whose mean training loss is NaN/inf or above
``DIVERGENCE_FACTOR`` x the task's chance loss stops the run with ``status: "diverged"``
and the reason (exit code 0: a grid must finish, and such runs are counted).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.profiler import record_function
from tqdm import tqdm

from geosparse.precision import autocast as precision_autocast
from geosparse.precision import configure as configure_precision
from geosparse.precision import describe as describe_precision
from geosparse.pruning import MagnitudePruner, lottery_ticket_reinit, scheduled_fraction
from geosparse.runio import (
    derive_seed,
    describe_device,
    load_checkpoint,
    machine,
    remove_stale_temps,
    save_checkpoint,
    setup_logging,
    versions,
    write_json,
)
from geosparse.runs import final_model_state

METRICS_SCHEMA_VERSION = 1


class CheckpointMismatchError(ValueError):
    """The run directory holds a checkpoint of another config or seed."""


class TaskRun(Protocol):
    """What a task provides to the driver (see ``tasks/navigation.py``).

    Optional attributes: ``steps_per_epoch`` (int), used when the config's ``training``
    section has none (e.g. one pass over a fixed training set), and ``data_description``
    (str), copied to ``metrics.json`` as ``data`` (e.g. to label a fixture corpus).
    """

    model: nn.Module
    pruner: MagnitudePruner
    trainable: list[nn.Parameter]
    chance_loss: float
    """Task loss of a constant guess; the divergence rule's scale (``divergence``)."""
    task_loss_key: str
    """The ``train_step`` stat holding the task loss without the penalty."""

    def start_phase(self, phase: str) -> None:
        """Reset the task's training data stream for ``phase``."""

    def new_optimizer(self) -> torch.optim.Optimizer: ...

    def train_step(self) -> dict[str, torch.Tensor]:
        """One forward pass on the next batch: ``loss`` (to backprop) + detached stats."""

    def after_step(self) -> None:
        """Called after every optimizer step and mask application."""

    def end_epoch(self, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """Per-epoch validation (may adjust the optimizer, e.g. lr on plateau)."""

    def evaluate(self) -> dict:
        """Final metrics of the current (sparse) model."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


TRAIN_STEP_LABEL = "geosparse:train_step (batch, forward, loss)"
"""Profiler range of ``task.train_step()``; it encloses the task's own ``geosparse:*`` ranges."""


def optimization_step(
    task: TaskRun, optimizer: torch.optim.Optimizer, grad_clip: float | None, precision: str = "fp32"
) -> dict[str, torch.Tensor]:
    """One training step of ``task``: forward (under ``precision``'s autocast), backward,
    clip, optimizer step, masks.

    Returns ``task.train_step()``'s stats, ``loss`` in float32. The phases are labelled ``geosparse:*`` for
    ``torch.profiler`` (``benchmarks/train_step.py --profile``); the labels cost ~1 us
    when no profiler runs.
    """
    device = next(task.model.parameters()).device if precision == "bf16" else None
    with record_function(TRAIN_STEP_LABEL), precision_autocast(precision, device):
        stats = task.train_step()
    stats["loss"] = stats["loss"].float()
    with record_function("geosparse:backward"):
        optimizer.zero_grad(set_to_none=True)
        stats["loss"].backward()
    with record_function("geosparse:optimizer (clip, step)"):
        if grad_clip:
            nn.utils.clip_grad_norm_(task.trainable, grad_clip)
        optimizer.step()
    with record_function("geosparse:masks"):
        task.pruner.apply_()
        task.after_step()
    return stats


class Trainer:
    """Runs a ``TaskRun`` under the config's training/pruning sections, writing ``out/``.

    Outputs: ``metrics.json`` (results + full config + provenance), ``checkpoint.pt``
    (resumable state), ``model_<phase>.pt`` (the finished phase, self-describing:
    ``geosparse.runs.final_model_state``), and ``train.log``.
    """

    def __init__(self, task: TaskRun, config: dict, seed: int, out: Path, device: torch.device):
        self.task, self.config, self.seed, self.out, self.device = task, config, seed, out, device
        self.log = setup_logging(out / "train.log")
        training, pruning = config["training"], config["pruning"]
        self.epochs = training["epochs"]
        self.total_epochs = training["epochs"] + training["finetune_epochs"]
        self.steps = training.get("steps_per_epoch") or task.steps_per_epoch
        self.grad_clip = training.get("grad_clip")
        self.precision = training["precision"]
        self.target, self.schedule = pruning["target"], pruning["schedule"]
        self.phases = ["sparse"] + (["lottery"] if config["lottery_ticket"]["enabled"] else [])

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _fraction(self, epoch: int) -> float:
        return scheduled_fraction(min(epoch, self.epochs - 1), self.epochs, self.target, self.schedule)

    def run(self) -> dict:
        configure_precision(self.precision)
        for stale in remove_stale_temps(self.out):  # left by a process killed mid-write
            self.log.info("removed stale temporary file %s", stale)
        state, optimizer_state = self._resume_state()
        optimizer = None
        for phase in self.phases[self.phases.index(state["phase"]):]:
            if phase != state["phase"]:  # entering a new phase (not resuming inside it)
                state.update(phase=phase, epoch=0)
                if phase == "lottery":
                    lottery_ticket_reinit(
                        self.task.model, self.task.pruner, derive_seed(self.seed, "lottery-init")
                    )
                self.task.start_phase(phase)
                optimizer_state = None
            optimizer = self.task.new_optimizer()
            if optimizer_state is not None:
                optimizer.load_state_dict(optimizer_state)
            while state["epoch"] < self.total_epochs and state["status"] == "running":
                self._train_epoch(state, optimizer)
                self._checkpoint(state, optimizer)
            if state["status"] == "diverged":
                break
            if phase not in state["results"]:
                started = time.perf_counter()
                state["results"][phase] = self.task.evaluate()
                state["wall_time_s"] += time.perf_counter() - started
                self.log.info("%s result: %s", phase, _short(state["results"][phase]))
                save_checkpoint(self.out / f"model_{phase}.pt",
                                final_model_state(self.task, self.config, self.seed, phase))
                self._checkpoint(state, optimizer)
        if state["status"] == "running":
            state["status"] = "completed"
        metrics = self._metrics(state)
        write_json(self.out / "metrics.json", metrics)
        self._checkpoint(state, optimizer)
        self.log.info("done: status=%s wall=%.1fs -> %s", state["status"], state["wall_time_s"],
                      self.out / "metrics.json")
        return metrics

    def _train_epoch(self, state: dict, optimizer: torch.optim.Optimizer) -> None:
        phase, epoch = state["phase"], state["epoch"]
        started = time.perf_counter()
        if phase == "sparse":
            self.task.pruner.prune_to(self._fraction(epoch))
        sums: dict[str, torch.Tensor] = {}
        bar = tqdm(range(self.steps), desc=f"{phase} epoch {epoch + 1}/{self.total_epochs}",
                   leave=False, disable=None)
        self.task.model.train()
        for _ in bar:
            stats = optimization_step(self.task, optimizer, self.grad_clip, self.precision)
            for key, value in stats.items():
                value = value.detach()
                sums[key] = sums[key] + value if key in sums else value
        means = {key: float(value) / self.steps for key, value in sums.items()}
        record = {"phase": phase, "epoch": epoch, "pruned_fraction_target": self._fraction(epoch)
                  if phase == "sparse" else None, **_finite_or_none(means)}
        report = self.task.pruner.report()
        record["sparsity"] = report["global"]["sparsity"]
        record.update({f"sparsity_{k}": v["sparsity"] for k, v in report["tensors"].items()})
        reason = divergence(means["loss"], means[self.task.task_loss_key], self.task.chance_loss)
        if reason is not None:
            state["status"] = "diverged"
            state["diverged"] = {"phase": phase, "epoch": epoch, "reason": reason}
            self.log.warning("%s epoch %d: %s, stopping (diverged)", phase, epoch, reason)
        else:
            record.update(self.task.end_epoch(optimizer))
        state["wall_time_s"] += time.perf_counter() - started
        state["history"].append(record)
        state["epoch"] += 1
        self.log.info("%s", _short(record))

    def _checkpoint(self, state: dict, optimizer: torch.optim.Optimizer | None) -> None:
        save_checkpoint(self.checkpoint_path, {
            **state,
            "config": self.config,
            "seed": self.seed,
            "model": self.task.model.state_dict(),
            "masks": self.task.pruner.state_dict(),
            "task": self.task.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
        })

    def _resume_state(self) -> tuple[dict, dict | None]:
        """The run state and optimizer state to continue from (fresh if no checkpoint)."""
        state = {"phase": self.phases[0], "epoch": 0, "status": "running", "diverged": None,
                 "history": [], "results": {}, "wall_time_s": 0.0}
        if not self.checkpoint_path.exists():
            self.task.start_phase(self.phases[0])
            return state, None
        saved = load_checkpoint(self.checkpoint_path, self.device)
        if saved["config"] != self.config or saved["seed"] != self.seed:
            raise CheckpointMismatchError(
                f"{self.checkpoint_path} belongs to a run with another config or seed; "
                "use a new --out directory or delete the checkpoint"
            )
        self.task.model.load_state_dict(saved["model"])
        self.task.pruner.load_state_dict(saved["masks"])
        self.task.load_state_dict(saved["task"])
        state = {key: saved[key] for key in state}
        self.log.info("resuming %s at epoch %d (%s)", state["phase"], state["epoch"], self.checkpoint_path)
        return state, saved["optimizer"]

    def _metrics(self, state: dict) -> dict:
        data = getattr(self.task, "data_description", None)
        return {
            "schema_version": METRICS_SCHEMA_VERSION,
            "task": self.config["task"],
            **({"data": data} if data is not None else {}),
            "status": state["status"],
            "diverged": state["diverged"],
            "seed": self.seed,
            "config": self.config,
            "versions": versions(),
            "device": describe_device(self.device),
            "machine": machine(),
            "precision": describe_precision(self.precision, self.device),
            "wall_time_s": state["wall_time_s"],
            "history": state["history"],
            "final": state["results"].get("sparse"),
            "lottery_ticket": state["results"].get("lottery"),
        }


DIVERGENCE_FACTOR = 100.0
"""A run has diverged when an epoch's mean training loss is NaN/inf or its mean task loss
(``TaskRun.task_loss_key``, without the penalty) is above this many times the task's
chance loss (``TaskRun.chance_loss``: the loss of a constant guess; navigation ln Np,
language ln V, adding 1/6)."""


def divergence(loss: float, task_loss: float, chance_loss: float) -> str | None:
    """Why an epoch counts as diverged, or None: its mean training ``loss`` (task loss +
    penalty) is NaN/inf, or its mean ``task_loss`` (the data term alone, so a strong
    penalty does not count) is above ``DIVERGENCE_FACTOR`` x ``chance_loss``."""
    if not math.isfinite(loss):
        return f"loss is {loss}"
    if task_loss > DIVERGENCE_FACTOR * chance_loss:
        return f"task loss {task_loss:.4g} > {DIVERGENCE_FACTOR:g} x the chance loss {chance_loss:.4g}"
    return None


def _finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN/inf: non-finite numbers become null."""
    return {k: v if math.isfinite(v) else None for k, v in values.items()}


def _short(record: dict) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in record.items() if not isinstance(v, dict)
    )
