"""Adding problem: data, model, learned embeddings, smoke runs, config errors, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import REPO, all_finite, comparable, crash_at_checkpoint, read_metrics, run_cli_subprocess
from geosparse.cli import main
from geosparse.config import load_schema, resolve
from geosparse.moduli import PERIOD
from geosparse.runs import new_run
from geosparse.tasks.adding import BASELINE_MSE, AddingRNN, adding_data

SMOKE = REPO / "config" / "adding" / "smoke.yaml"


def _train(out: Path, *overrides: str, seed: int = 0) -> int:
    args = ["train", "adding", "--config", str(SMOKE), "--seed", str(seed), "--out", str(out), "--device", "cpu"]
    for assignment in overrides:
        args += ["--set", assignment]
    return main(args)


def test_targets_are_the_sum_of_the_two_marked_values():
    global_state = torch.random.get_rng_state()
    inputs, targets = adding_data(500, 50, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), global_state)  # no global RNG
    assert inputs.shape == (50, 500, 2) and targets.shape == (500,)
    values, marks = inputs[..., 0], inputs[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(marks.sum(0), torch.full((500,), 2.0))
    assert set(marks.unique().tolist()) == {0.0, 1.0}
    for sample in range(0, 500, 37):
        marked = values[marks[:, sample] == 1, sample]
        assert float(targets[sample]) == pytest.approx(float(marked.sum()))
    again = adding_data(500, 50, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)


def test_constant_prediction_baseline_is_one_sixth():
    _, targets = adding_data(200_000, 5, torch.Generator().manual_seed(1))
    assert float(((targets - 1) ** 2).mean()) == pytest.approx(BASELINE_MSE, rel=0.02)


def test_model_shapes_and_recurrent_block():
    model = AddingRNN(8)
    assert model.i2h.weight.shape == (8, 10) and model.h2o.weight.shape == (1, 8)
    assert model(torch.zeros(7, 3, 2)).shape == (3,)
    w_hh = model.recurrent_weight()
    assert w_hh.shape == (8, 8)
    assert w_hh.data_ptr() == model.i2h.weight[:, 2:].data_ptr()  # a view, not a copy


@pytest.mark.parametrize("space", ["torus", "s3", "r3"])
def test_learned_embeddings_move_and_stay_on_their_manifold(space):
    config = resolve(
        SMOKE, "adding", [f"regularizer.space={space}", "regularizer.strength=1.0", "regularizer.learn_embedding=true"]
    )
    run = new_run(config, seed=0, device=torch.device("cpu"))
    run.task.start_phase("sparse")
    before = run.regularizer.positions.detach().clone()
    optimizer = run.new_optimizer()
    for _ in range(20):
        stats = run.task.train_step(run.model)
        optimizer.zero_grad()
        stats["loss"].backward()
        optimizer.step()
        run.regularizer.project_()
    after = run.regularizer.positions.detach()
    assert (after - before).abs().max() > 1e-3
    if space == "torus":
        assert ((after >= 0) & (after < PERIOD)).all()
    if space == "s3":
        assert torch.allclose(after.norm(dim=1), torch.ones(len(after)), atol=1e-6)


def test_smoke_run_learns_and_writes_valid_metrics(tmp_path):
    assert _train(tmp_path / "run") == 0
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "completed" and all_finite(metrics)
    assert "data" not in metrics  # generated data: no corpus label
    history = metrics["history"]
    assert history[-1]["mse"] < history[0]["mse"]
    final = metrics["final"]
    assert final["baseline_mse"] == pytest.approx(1 / 6)
    assert final["beats_baseline"] == (final["test_mse"] < 1 / 6)
    assert final["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert set(final["sparsity_report"]["tensors"]) == {"i2h", "h2o"}
    assert len(history) == 3 and all("val_mse" in h for h in history)


def test_same_seed_same_metrics(tmp_path):
    assert _train(tmp_path / "a", "lottery_ticket.enabled=true") == 0
    assert _train(tmp_path / "b", "lottery_ticket.enabled=true") == 0
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert comparable(a) == comparable(b)
    assert a["lottery_ticket"]["test_mse"] is not None
    assert _train(tmp_path / "c", seed=1) == 0
    assert read_metrics(tmp_path / "c")["final"] != a["final"]


def test_bad_config_exits_2_naming_the_key(tmp_path):
    result = run_cli_subprocess(
        ["train", "adding", "--config", str(SMOKE), "--out", str(tmp_path / "x"), "--set", "pruning.tensors=[W_hh]"]
    )
    assert result.returncode == 2
    assert "pruning.tensors" in result.stderr
    result = run_cli_subprocess(
        ["train", "adding", "--config", str(SMOKE), "--out", str(tmp_path / "x"), "--set", "data.length=1"]
    )
    assert result.returncode == 2 and "data.length" in result.stderr


def test_schema_uses_the_shared_regularizer_section():
    assert load_schema("adding")["properties"]["regularizer"] == {"$ref": "regularizer.schema.yaml"}


@pytest.mark.parametrize("crash_at", [2, 5])  # mid-pruning, mid-lottery (batch order state)
def test_resume_after_a_crash_gives_the_same_metrics(tmp_path, monkeypatch, crash_at):
    overrides = ("lottery_ticket.enabled=true",)
    assert _train(tmp_path / "straight", *overrides) == 0
    with crash_at_checkpoint(monkeypatch, crash_at):
        _train(tmp_path / "crashed", *overrides)
    assert _train(tmp_path / "crashed", *overrides) == 0
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "crashed")
    for key in ("history", "final", "lottery_ticket"):
        assert resumed[key] == straight[key]
