"""What a run is: the task interface, the run the driver builds from it, the final model
file, and the one loader of finished runs.

A task (``geosparse.tasks.*_training``) gives data, its moduli regularizers and the loss
(``Task``); ``new_run`` adds what every task shares, once: the seeded model, the pruner
over the config's ``pruning.tensors``, the trainable list and the sparsity report.

A run folder's ``model_<phase>.pt`` (``phase`` sparse or lottery) is self-describing, as
nanoGPT's checkpoint: format version, task, config, seed, phase, the model's weights, the
pruning masks and the task's own state (the regularizer, learned neuron positions
included). ``checkpoint.pt`` only serves to resume a killed run, and the workflow deletes
it when a run ends, so nothing that rebuilds a finished run may read it.
``load_finished`` is what export, the sweep, the sparse-inference benchmark and the
connectivity extraction use; a run that did not complete is refused with its status. It
restores weights, masks and regularizers, never the training data stream, and loads on
any device whatever device trained the run (files hold CPU tensors; ``runio``).
Files from before format version 1 (``{model, masks}``) still load, from metrics.json's
config and seed, unless the run learned its neuron positions (those were not saved).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from geosparse.config import InputError
from geosparse.files import read_json
from geosparse.pruning import MagnitudePruner
from geosparse.regularizer import ModuliRegularizer
from geosparse.runfiles import (
    FINAL_MODEL_VERSION,
    RETRAIN,
    RunFileError,
    check_mapping,
    check_metrics,
    check_model_file,
    check_tensors,
)
from geosparse.runio import derive_seed, load_checkpoint
from geosparse.tasks import TASKS


class Task(Protocol):
    """What a task gives the driver; built as ``Task(config, seed, device)``.

    The task owns its data streams and regularizers and builds its model
    (``build_model``, called by ``new_run`` under the run's seed) and its optimizer (over
    the parameter list the run gives it); it never builds the pruner or that list, and
    never changes the optimizer afterwards (the driver applies ``lr_plateau_key``'s policy).
    """

    chance_loss: float
    """Task loss of a constant guess; the divergence rule's scale (``training.divergence``)."""
    task_loss_key: str
    """The ``train_step`` stat holding the task loss without the penalty."""
    steps_per_epoch: int | None
    """Steps of one epoch when the config's ``training`` section has none (a pass over a
    fixed training set), else None."""
    data_description: str | None
    """Copied to metrics.json as ``data`` (e.g. the label of a fixture corpus), or None."""
    lr_plateau_key: str | None
    """A ``validate`` entry: when it does not improve on the phase's best, the driver
    divides the learning rate by ``training.lr_decay`` (None: constant learning rate)."""
    regularizers: nn.ModuleList
    """The moduli regularizers (one per regularized W_hh); the driver trains their
    parameters (learned positions) and projects them after every step."""

    def build_model(self) -> nn.Module:
        """A new model; the driver seeds the global RNG for it. It names its prunable
        weights as ``model.prunable(groups) -> {name: weight}``."""

    def optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer: ...

    def start_phase(self, phase: str) -> None:
        """Start the training data stream of ``phase`` (called once per phase, also
        before ``load_state_dict`` when a run resumes)."""

    def train_step(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """One forward pass on the next batch: ``loss`` (to backprop) + detached stats."""

    def validate(self, model: nn.Module) -> dict[str, float | None]:
        """Per-epoch validation entries of the history (may be empty)."""

    def evaluate(self, model: nn.Module) -> dict:
        """Final task metrics of the (sparse) model; ``new_run`` adds the sparsity."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` to resume training (after ``start_phase``)."""

    def load_regularizers(self, state: dict) -> None:
        """Restore only the regularizers (learned neuron positions) of a ``state_dict()``,
        nothing of the training data stream: what a finished run needs (``load_finished``)."""


@dataclass
class Run:
    """One run: its task, and the model and pruner built for it (``new_run``)."""

    task: Task
    model: nn.Module
    pruner: MagnitudePruner
    config: dict
    seed: int
    device: torch.device

    @property
    def trainable(self) -> list[nn.Parameter]:
        """Model parameters, then the regularizers' (learned positions)."""
        return [*self.model.parameters(), *self.task.regularizers.parameters()]

    @property
    def regularizer(self) -> ModuliRegularizer:
        """The regularizer of a task with one regularized W_hh (navigation, adding)."""
        if len(self.task.regularizers) != 1:
            raise ValueError(f"a {self.config['task']} run has {len(self.task.regularizers)} regularizers")
        return self.task.regularizers[0]

    def new_optimizer(self) -> torch.optim.Optimizer:
        return self.task.optimizer(self.trainable)

    def evaluate(self) -> dict:
        """The task's final metrics and the measured sparsity of the pruned tensors."""
        report = self.pruner.report()
        return {**self.task.evaluate(self.model), "sparsity": report["global"]["sparsity"], "sparsity_report": report}

    def final_state(self, phase: str) -> dict:
        """What ``model_<phase>.pt`` holds: everything that rebuilds the finished run alone."""
        return {
            "version": FINAL_MODEL_VERSION,
            "task": self.config["task"],
            "phase": phase,
            "config": self.config,
            "seed": self.seed,
            "model": self.model.state_dict(),
            "masks": self.pruner.state_dict(),
            "task_state": self.task.state_dict(),
        }


def new_run(config: dict, seed: int, device: torch.device) -> Run:
    """A fresh run of ``config["task"]``: the task, its model (seeded by
    ``derive_seed(seed, "model-init")`` without touching the global RNG stream) and the
    pruner over ``pruning.tensors``."""
    module, name = TASKS[config["task"]].task_class.split(":")
    task = getattr(importlib.import_module(module), name)(config, seed, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "model-init"))
        model = task.build_model()
    model.to(device)
    pruning = config["pruning"]
    pruner = MagnitudePruner(model.prunable(pruning["tensors"]), scope=pruning["scope"])
    return Run(task, model, pruner, config, seed, device)


@dataclass
class FinishedRun:
    """A rebuilt finished run: the ``Run`` with its final weights, masks and task state,
    the masks as bool tensors by group, and the run's metrics.json."""

    run: Run
    masks: dict[str, torch.Tensor]
    metrics: dict


def load_finished(
    run_dir: str | Path, phase: str = "sparse", device: torch.device | str = "cpu", task: str | None = None
) -> FinishedRun:
    """The finished run in ``run_dir``, or InputError saying why not: no metrics.json, a
    status other than ``completed`` (diverged runs have no final model), no model file,
    a run of another ``task`` than asked for, or a file that breaks its schema
    (``geosparse.runfiles``: type, keys, versions, the embedded config, tensor shapes)."""
    run_dir, device = Path(run_dir), torch.device(device)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise InputError(f"{metrics_path} not found: not a finished run folder")
    metrics = check_metrics(read_json(metrics_path), metrics_path)
    config = metrics["config"]
    if task is not None and config["task"] != task:
        raise InputError(f"{run_dir} is a {config['task']!r} run, not a {task} run")
    if metrics["status"] != "completed":
        raise InputError(f"{run_dir} has no final model (status {metrics['status']!r})")
    model_path = run_dir / f"model_{phase}.pt"
    if not model_path.is_file():
        raise InputError(f"{model_path} not found (phase {phase!r} was not run)")
    saved = check_mapping(load_checkpoint(model_path), model_path)
    if saved.get("version") is None and {"model", "masks"} <= set(saved):
        # the earlier format ({model, masks}): config and seed from metrics.json, which fix
        # the neuron positions unless they were learned (those were not saved)
        if config["regularizer"].get("learn_embedding"):
            raise InputError(
                f"{model_path} predates format version {FINAL_MODEL_VERSION} and lacks the "
                "learned neuron positions: retrain the run (delete its folder)"
            )
        saved = {**saved, "config": config, "seed": metrics["seed"], "task_state": None}
    else:
        saved = check_model_file(saved, model_path)
    run = new_run(saved["config"], saved["seed"], device)
    check_tensors(run.model.state_dict(), saved["model"], model_path, "model")
    check_tensors(run.pruner.masks, saved["masks"], model_path, "masks")
    run.model.load_state_dict(saved["model"])
    run.pruner.load_state_dict(saved["masks"])
    if saved["task_state"] is not None:  # the training stream's state is not needed
        try:
            run.task.load_regularizers(saved["task_state"])
        except (KeyError, TypeError, RuntimeError) as error:  # names or shapes of the regularizers
            raise RunFileError(
                f"{model_path}: key 'task_state': not this config's regularizer state "
                f"({type(error).__name__}: {str(error).splitlines()[0]}); {RETRAIN}"
            ) from None
    masks = {name: mask.bool() for name, mask in saved["masks"].items()}
    return FinishedRun(run, masks, metrics)
