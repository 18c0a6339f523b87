"""``geosparse sweep``: post-hoc pruning of a finished run, evaluated with its own rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import cli_args, read_metrics
from geosparse.cli import main
from geosparse.sweep import sweep_navigation


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "run"
    assert main(cli_args(out, "pruning.target=0.5")) == 0
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_levels_below_the_run_are_the_run_as_is(run_dir):
    result = sweep_navigation(run_dir, [0.2, 0.5])
    final = read_metrics(run_dir)["final"]
    assert result["status"] == "completed"
    assert result["run_sparsity"] == pytest.approx(final["sparsity"], abs=1e-3)
    for row in result["levels"]:
        assert row["evaluated_as_is"]
        assert row["error_cm"] == pytest.approx(final["error_cm"])
        assert row["sparsity"] == pytest.approx(final["sparsity"])


def test_higher_levels_prune_further_and_leave_the_run_untouched(run_dir):
    before = _digest(run_dir)
    result = sweep_navigation(run_dir, [0.95, 0.8])
    assert [row["level"] for row in result["levels"]] == [0.8, 0.95]
    for row in result["levels"]:
        assert not row["evaluated_as_is"]
        assert row["sparsity"] == pytest.approx(row["level"], abs=1e-3)
    assert result["eval_rule"] == read_metrics(run_dir)["final"]["eval_rule"]
    assert _digest(run_dir) == before


def test_cli_writes_json(run_dir, tmp_path):
    out = tmp_path / "sweep.json"
    argv = ["sweep", "navigation", "--run", str(run_dir), "--levels", "0.5", "0.9", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert [row["level"] for row in data["levels"]] == [0.5, 0.9]


@pytest.mark.parametrize("level", ["1.0", "-0.1"])
def test_cli_rejects_levels_outside_unit_interval(run_dir, tmp_path, level, capsys):
    argv = ["sweep", "navigation", "--run", str(run_dir), "--levels", level, "--out", str(tmp_path / "s.json")]
    assert main(argv) == 2
    assert "[0, 1)" in capsys.readouterr().err


def test_a_diverged_run_has_no_levels(tmp_path):
    run = tmp_path / "diverged"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"status": "diverged", "seed": 3}))
    result = sweep_navigation(run, [0.9])
    assert result["status"] == "diverged"
    assert result["levels"] == []


def test_a_per_tensor_run_is_swept_by_global_magnitude(tmp_path):
    out = tmp_path / "per_tensor"
    assert main(cli_args(out, "pruning.target=0.5", "pruning.scope=per_tensor")) == 0
    result = sweep_navigation(out, [0.9])
    assert result["scope"] == "global"
    assert result["levels"][0]["sparsity"] == pytest.approx(0.9, abs=1e-3)
