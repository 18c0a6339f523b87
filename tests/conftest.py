"""Shared helpers for the geosparse behaviour tests (all CPU, tiny sizes)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WIKITEXT_EXCERPT = REPO / "data" / "wikitext-2-excerpt"
"""The genuine WikiText-2 valid/test excerpt shipped in the repository (its README)."""
EXCERPT_COUNTS = {"valid": (103, 5378), "test": (116, 5956)}
"""Lines and tokens (words + one ``<eos>`` per line) of the excerpt's files."""
SMOKE = REPO / "config" / "navigation" / "smoke.yaml"
DEFAULT = REPO / "config" / "navigation" / "default.yaml"

# The benchmarks and the workflow's scripts import their siblings by plain module name
# (as when run from their folder); every test module may import them the same way.
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "workflow" / "scripts")]

# Keep the suite light on a shared 2-core machine.
torch.set_num_threads(1)


def _reject_constant(name: str):
    raise ValueError(f"metrics.json holds the non-JSON constant {name}")


def read_metrics(out: Path) -> dict:
    """Parse ``out/metrics.json`` strictly (NaN / Infinity are not JSON)."""
    return json.loads((out / "metrics.json").read_text(), parse_constant=_reject_constant)


def comparable(metrics: dict) -> dict:
    """Metrics without the fields that legitimately differ between identical runs: wall
    time, start and finish times, and ``machine`` (the environment of the process that
    finished the run, e.g. a resumed run's thread variables)."""
    return {k: v for k, v in metrics.items() if k not in ("wall_time_s", "started_at", "finished_at", "machine")}


def all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


def cli_args(out: Path, *overrides: str, seed: int = 0, config: Path = SMOKE) -> list[str]:
    args = ["train", "navigation", "--config", str(config), "--seed", str(seed), "--out", str(out), "--device", "cpu"]
    for assignment in overrides:
        args += ["--set", assignment]
    return args


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def run_cli_subprocess(args: list[str], timeout: float = 120, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python -m geosparse.cli ARGS`` in a child process (real exit codes and stderr),
    run from ``cwd`` (the repository root unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "geosparse.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        cwd=cwd,
    )


@pytest.fixture
def float64_generator():
    return torch.Generator().manual_seed(1234)


class Crash(Exception):
    """Stands in for a process killed right after a checkpoint was written."""


@contextlib.contextmanager
def crash_at_checkpoint(monkeypatch, n: int):
    """Inside the block the ``n``-th ``Trainer`` checkpoint raises ``Crash`` right after
    it is written (the block must crash there); checkpoints are normal again afterwards."""
    from geosparse.training import Trainer

    original, calls = Trainer._checkpoint, {"n": 0}

    def checkpoint_then_crash(self, state, optimizer):
        original(self, state, optimizer)
        calls["n"] += 1
        if calls["n"] == n:
            raise Crash

    monkeypatch.setattr(Trainer, "_checkpoint", checkpoint_then_crash)
    try:
        with pytest.raises(Crash):
            yield
    finally:
        monkeypatch.setattr(Trainer, "_checkpoint", original)
