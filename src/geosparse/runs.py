"""Finished runs: what a final model file holds, and the one loader of it.

A run folder's ``model_<phase>.pt`` (``phase`` sparse or lottery) is self-describing, as
nanoGPT's checkpoint: format version, task, config, seed, phase, the model's weights, the
pruning masks and the task's own state (the regularizer, learned neuron positions
included). ``checkpoint.pt`` only serves to resume a killed run, and the workflow deletes
it when a run ends, so nothing that rebuilds a finished run may read it.
``load_finished`` is what export, the sweep, the sparse-inference benchmark and the
connectivity extraction use; a run that did not complete is refused with its status.
Files from before format version 1 (``{model, masks}``) still load, from metrics.json's
config and seed, unless the run learned its neuron positions (those were not saved).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geosparse.files import read_json
from geosparse.runio import load_checkpoint

TASK_RUNS = {
    "navigation": "geosparse.tasks.navigation_training:NavigationRun",
    "language": "geosparse.tasks.language_training:LanguageRun",
    "adding": "geosparse.tasks.adding_training:AddingRun",
}
"""Task name -> its ``TaskRun`` class (``module:class``)."""

FINAL_MODEL_VERSION = 1
"""Format of ``model_<phase>.pt``; files of another version are refused (retrain)."""


def task_run(config: dict, seed: int, device: torch.device) -> Any:
    """A fresh ``TaskRun`` of ``config["task"]`` (seeded model, regularizer, data)."""
    module, name = TASK_RUNS[config["task"]].split(":")
    return getattr(importlib.import_module(module), name)(config, seed, device)


def final_model_state(task: Any, config: dict, seed: int, phase: str) -> dict:
    """What ``model_<phase>.pt`` holds: everything that rebuilds the finished run alone."""
    return {
        "version": FINAL_MODEL_VERSION,
        "task": config["task"],
        "phase": phase,
        "config": config,
        "seed": seed,
        "model": task.model.state_dict(),
        "masks": task.pruner.state_dict(),
        "task_state": task.state_dict(),
    }


@dataclass
class FinishedRun:
    """A rebuilt finished run: the ``TaskRun`` with its final weights, masks and task state,
    the masks as bool tensors by group, and the run's metrics.json."""

    run: Any
    masks: dict[str, torch.Tensor]
    metrics: dict


def load_finished(run_dir: str | Path, phase: str = "sparse", device: torch.device | str = "cpu",
                  task: str | None = None) -> FinishedRun:
    """The finished run in ``run_dir``, or ValueError saying why not: no metrics.json, a
    status other than ``completed`` (diverged runs have no final model), no model file,
    a model file of another format version, or a run of another ``task`` than asked for."""
    run_dir, device = Path(run_dir), torch.device(device)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise ValueError(f"{metrics_path} not found: not a finished run folder")
    metrics = read_json(metrics_path)
    config = metrics.get("config") or {}
    if task is not None and config.get("task") != task:
        raise ValueError(f"{run_dir} is a {config.get('task')!r} run, not a {task} run")
    if metrics.get("status") != "completed":
        raise ValueError(f"{run_dir} has no final model (status {metrics.get('status')!r})")
    model_path = run_dir / f"model_{phase}.pt"
    if not model_path.is_file():
        raise ValueError(f"{model_path} not found (phase {phase!r} was not run)")
    saved = load_checkpoint(model_path, device)
    if saved.get("version") is None and {"model", "masks"} <= set(saved):
        # the earlier format ({model, masks}): config and seed from metrics.json, which fix
        # the neuron positions unless they were learned (those were not saved)
        if config.get("regularizer", {}).get("learn_embedding"):
            raise ValueError(f"{model_path} predates format version {FINAL_MODEL_VERSION} and lacks the "
                             "learned neuron positions: retrain the run (delete its folder)")
        saved = {**saved, "config": config, "seed": metrics["seed"], "task_state": None}
    elif saved.get("version") != FINAL_MODEL_VERSION:
        raise ValueError(f"{model_path} has format version {saved.get('version')!r}, this geosparse "
                         f"reads {FINAL_MODEL_VERSION}: retrain the run (delete its folder)")
    run = task_run(saved["config"], saved["seed"], device)
    run.model.load_state_dict(saved["model"])
    run.pruner.load_state_dict(saved["masks"])
    if saved["task_state"] is not None:
        run.load_state_dict(saved["task_state"])
    masks = {name: mask.bool() for name, mask in saved["masks"].items()}
    return FinishedRun(run, masks, metrics)
