"""One schema per run file, checked before a file is used: ``metrics.json``,
``model_<phase>.pt`` and ``checkpoint.pt`` (``geosparse.runs.load_finished`` and the
training driver's resume call these).

A file of the wrong type, with a missing key, a value of the wrong type, another schema
or format version, an embedded config that its task's schema refuses (sizes included:
an ``n_hidden`` of 2,000,000 is refused before anything is allocated), or tensors whose
names or shapes differ from the model the config builds raises ``RunFileError`` naming
the file and the key; the CLI exits 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geosparse.config import ConfigError, InputError, validate
from geosparse.tasks import TASKS

METRICS_SCHEMA_VERSION = 1
"""Schema of metrics.json (``schema_version``); another version is refused (retrain)."""
FINAL_MODEL_VERSION = 1
"""Format of ``model_<phase>.pt`` (``version``); another version is refused (retrain)."""
STATUSES = ("completed", "diverged")
"""The ``status`` of a finished run's metrics.json."""
PHASES = ("sparse", "lottery")

RETRAIN = "retrain the run (delete its folder)"


class RunFileError(InputError):
    """A run file does not hold what its schema says."""


def fail(path: Path, key: str, problem: str) -> RunFileError:
    return RunFileError(f"{path}: key {key!r}: {problem}; {RETRAIN}")


def require(data: Mapping, path: Path, key: str, kind: type | tuple[type, ...]) -> Any:
    """``data[key]``, which must exist and be a ``kind`` (a bool is no integer here)."""
    if key not in data:
        raise fail(path, key, "missing")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise fail(path, key, f"must be {names}, got {type(value).__name__}")
    return value


def require_version(data: Mapping, path: Path, key: str, expected: int, what: str) -> None:
    """``data[key]`` is the integer ``expected`` (the ``what`` this geosparse reads)."""
    version = require(data, path, key, int)
    if version != expected:
        raise fail(path, key, f"{what} {version}, this geosparse reads {expected}")


def require_choice(data: Mapping, path: Path, key: str, allowed: tuple[str, ...]) -> str:
    """``data[key]``, a string from ``allowed``."""
    value = require(data, path, key, str)
    if value not in allowed:
        raise fail(path, key, f"{value!r}; allowed values: {list(allowed)}")
    return value


def check_mapping(data: Any, path: Path) -> dict:
    if not isinstance(data, dict):
        raise RunFileError(f"{path} must hold a mapping, not a {type(data).__name__}; {RETRAIN}")
    return data


def check_config(data: Mapping, path: Path, key: str = "config") -> dict:
    """The run config embedded in a run file, valid for its task's schema."""
    config = require(data, path, key, dict)
    task = config.get("task")
    if task not in TASKS:
        raise fail(path, f"{key}.task", f"unknown task {task!r}; allowed values: {list(TASKS)}")
    try:
        return validate(config, task)
    except ConfigError as error:
        raise fail(path, key, str(error)) from None


def check_seed(data: Mapping, path: Path) -> int:
    seed = require(data, path, "seed", int)
    if not 0 <= seed < 2**63:
        raise fail(path, "seed", f"must be in [0, 2**63), got {seed}")
    return seed


def check_run_header(
    data: Any, path: Path, version: tuple[str, int, str], choice: tuple[str, tuple[str, ...]]
) -> tuple[dict, dict]:
    """(``data``, its config) once the part every finished-run file shares is checked: a
    mapping with ``version`` = (key, the supported version, what the message calls it),
    ``choice`` = (key, allowed values), a seed and a valid run config."""
    data = check_mapping(data, path)
    require_version(data, path, *version)
    require_choice(data, path, *choice)
    check_seed(data, path)
    return data, check_config(data, path)


def check_metrics(metrics: Any, path: Path) -> dict:
    """A finished run's metrics.json (what ``geosparse.training`` writes)."""
    metrics, _ = check_run_header(
        metrics, path, ("schema_version", METRICS_SCHEMA_VERSION, "version"), ("status", STATUSES)
    )
    for key in ("final", "lottery_ticket"):
        require(metrics, path, key, (dict, type(None)))
    require(metrics, path, "history", list)
    return metrics


def check_model_file(saved: Any, path: Path) -> dict:
    """A ``model_<phase>.pt`` of format ``FINAL_MODEL_VERSION`` (``Run.final_state``)."""
    saved, config = check_run_header(saved, path, ("version", FINAL_MODEL_VERSION, "format version"), ("phase", PHASES))
    if require(saved, path, "task", str) != config["task"]:
        raise fail(path, "task", f"{saved['task']!r} differs from config.task {config['task']!r}")
    require(saved, path, "model", dict)
    require(saved, path, "masks", dict)
    require(saved, path, "task_state", (dict, type(None)))
    return saved


def check_tensors(expected: Mapping[str, torch.Tensor], given: Any, path: Path, key: str) -> None:
    """``given`` (a file's ``key``) has exactly ``expected``'s names, each a tensor of
    the same shape (checked before ``load_state_dict``, whose errors name no file)."""
    if not isinstance(given, dict):
        raise fail(path, key, f"must be a mapping of tensors, got {type(given).__name__}")
    if set(given) != set(expected):
        missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
        raise fail(path, key, f"tensor names differ from the model's (missing {missing}, unexpected {extra})")
    for name, tensor in expected.items():
        value = given[name]
        if not isinstance(value, torch.Tensor):
            raise fail(path, f"{key}.{name}", f"must be a tensor, got {type(value).__name__}")
        if value.shape != tensor.shape:
            raise fail(path, f"{key}.{name}", f"shape {tuple(value.shape)}, the config builds {tuple(tensor.shape)}")


def check_resume_state(saved: Mapping, path: Path, phases: list[str], total_epochs: int, steps: int) -> None:
    """The run state of a ``checkpoint.pt`` (the driver's loop variables) before resuming."""
    phase = require(saved, path, "phase", str)
    if phase not in phases:
        raise fail(path, "phase", f"{phase!r}; this run's phases: {phases}")
    epoch = require(saved, path, "epoch", int)
    if not 0 <= epoch <= total_epochs:
        raise fail(path, "epoch", f"must be in [0, {total_epochs}], got {epoch}")
    require_choice(saved, path, "status", ("running", *STATUSES))
    require(saved, path, "history", list)
    require(saved, path, "results", dict)
    wall = require(saved, path, "wall_time_s", (float, int))
    if not math.isfinite(wall):
        raise fail(path, "wall_time_s", "must be finite")
    require(saved, path, "started_at", (str, type(None)))
    require(saved, path, "optimizer", (dict, type(None)))
    require(saved, path, "torch_rng", dict)
    partial = require(saved, path, "partial", (dict, type(None)))
    if partial is not None:
        step = partial.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < steps:
            raise fail(path, "partial.step", f"must be an integer in [0, {steps}), got {step!r}")
        sums = partial.get("sums")
        if not isinstance(sums, dict) or not all(isinstance(v, torch.Tensor) for v in sums.values()):
            raise fail(path, "partial.sums", "must be a mapping of tensors")
