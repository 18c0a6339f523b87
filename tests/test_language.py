"""Language modelling: batching/BPTT, metrics, penalty, and smoke runs on the FIXTURE corpus."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import (
    REPO,
    WIKITEXT_EXCERPT,
    all_finite,
    comparable,
    crash_at_checkpoint,
    read_metrics,
    run_cli_subprocess,
)
from geosparse.cli import main
from geosparse.config import load_schema, resolve
from geosparse.tasks.language import (
    WordRNN,
    batchify,
    perplexity,
    token_counts,
    window,
    window_starts,
)
from geosparse.tasks.language_training import language_penalty, layer_regularizers

SMOKE = REPO / "config" / "language" / "smoke.yaml"


def _train(out: Path, *overrides: str, seed: int = 0) -> int:
    args = [
        "train",
        "language",
        "--config",
        str(SMOKE),
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--set",
        f"data.cache_dir={out.parent / 'cache'}",
        "--set",
        f"data.dir={WIKITEXT_EXCERPT}",
    ]
    for assignment in overrides:
        args += ["--set", assignment]
    return main(args)


def test_batchify_makes_contiguous_columns():
    tokens = torch.arange(103)
    data = batchify(tokens, 4)
    assert data.shape == (25, 4)
    for column in range(4):
        assert torch.equal(data[:, column], tokens[25 * column : 25 * (column + 1)])


def test_bptt_windows_cover_every_target_once():
    data = batchify(torch.arange(103), 4)  # 25 rows
    starts = list(window_starts(data.size(0), 10))
    assert starts == [0, 10, 20]
    shapes, targets = [], []
    for start in starts:
        inputs, target = window(data, start, 10)
        assert inputs.shape == target.shape
        assert torch.equal(target, inputs + 1)  # next token of a contiguous stream
        shapes.append(tuple(inputs.shape))
        targets.append(target)
    assert shapes == [(10, 4), (10, 4), (4, 4)]
    assert torch.equal(torch.cat(targets), data[1:])


def test_token_counts_sum_nll_and_count_correct_argmax():
    log_probs = torch.log_softmax(
        torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], [[0.0, 1.0, 0.0], [5.0, 0.0, 0.0]]]), dim=-1
    )
    targets = torch.tensor([[0, 1], [1, 2]])  # argmax is [[0, 2], [1, 0]]: 2 correct
    nll, correct = token_counts(log_probs, targets)
    expected = -sum(float(log_probs[t, b, targets[t, b]]) for t in range(2) for b in range(2))
    assert int(correct) == 2
    assert float(nll) == pytest.approx(expected)


def test_perplexity_is_exp_loss_and_json_safe():
    assert perplexity(math.log(100.0)) == pytest.approx(100.0)
    assert perplexity(float("nan")) is None and perplexity(1e6) is None


def test_prunable_names_every_layer():
    model = WordRNN(50, 8, 6, n_layers=3)
    names = list(model.prunable(["embedding", "W_ih", "W_hh", "decoder"]))
    assert names == ["embedding", "W_ih_l0", "W_ih_l1", "W_ih_l2", "W_hh_l0", "W_hh_l1", "W_hh_l2", "decoder"]
    with pytest.raises(ValueError, match="allowed values"):
        model.prunable(["W_xx"])


@torch.no_grad()
def test_penalty_is_moduli_on_every_w_hh_plus_l1_on_the_rest():
    config = resolve(SMOKE, "language", ["model.n_hidden=6", "model.n_layers=2"])
    model = WordRNN(40, 5, 6, n_layers=2)
    regs = layer_regularizers(config, seed=3)
    moduli = sum(r.reg(w) for r, w in zip(regs, model.recurrent_weights(), strict=True))
    others = [*model.input_weights(), model.encoder.weight, model.decoder.weight]
    lam = config["regularizer"]["strength"]
    expected = moduli + lam * sum(w.abs().mean() for w in others)
    assert float(language_penalty(model, regs, config)) == pytest.approx(float(expected))
    config["penalty"]["l1_other_weights"] = False
    assert float(language_penalty(model, regs, config)) == pytest.approx(float(moduli))
    assert not torch.equal(regs[0].coefficients, regs[1].coefficients)  # own positions per layer


def test_schema_uses_the_shared_regularizer_section():
    assert load_schema("language")["properties"]["regularizer"] == {"$ref": "regularizer.schema.yaml"}


def test_smoke_run_learns_and_writes_labelled_metrics(tmp_path):
    assert _train(tmp_path / "run") == 0
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "completed" and all_finite(metrics)
    assert metrics["data"].startswith("fixture (not WikiText-2 train)")
    final = metrics["final"]
    assert final["data"] == metrics["data"]
    assert final["test_ppl"] == pytest.approx(math.exp(final["test_loss"]))
    assert 0 <= final["test_accuracy"] <= 1
    history = metrics["history"]
    assert history[-1]["task_loss"] < history[0]["task_loss"]
    assert [h["val_loss"] for h in history] == final["val_loss_history"]
    assert final["sparsity"] == pytest.approx(0.9, abs=1e-3)  # measured, not the target
    assert set(final["sparsity_report"]["tensors"]) == {
        "embedding",
        "W_ih_l0",
        "W_ih_l1",
        "W_hh_l0",
        "W_hh_l1",
        "decoder",
    }


def test_lr_is_quartered_when_validation_does_not_improve(tmp_path):
    assert _train(tmp_path / "run", "training.epochs=4") == 0
    history = read_metrics(tmp_path / "run")["history"]
    lr, best = 20.0, math.inf
    for record in history:
        if record["val_loss"] < best:
            best = record["val_loss"]
        else:
            lr /= 4
        assert record["lr"] == pytest.approx(lr)


def test_same_seed_same_metrics_and_lottery_ticket(tmp_path):
    overrides = ("training.epochs=2", "lottery_ticket.enabled=true")
    assert _train(tmp_path / "a", *overrides) == 0
    assert _train(tmp_path / "b", *overrides) == 0
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert comparable(a) == comparable(b)
    assert a["lottery_ticket"]["test_loss"] != a["final"]["test_loss"]
    assert a["lottery_ticket"]["sparsity"] == pytest.approx(a["final"]["sparsity"])


def test_bad_config_exits_2_naming_the_key(tmp_path):
    result = run_cli_subprocess(
        ["train", "language", "--config", str(SMOKE), "--out", str(tmp_path / "x"), "--set", "training.bptt=0"]
    )
    assert result.returncode == 2
    assert "training.bptt" in result.stderr
    result = run_cli_subprocess(
        ["train", "language", "--config", str(SMOKE), "--out", str(tmp_path / "x"), "--set", "pruning.tensors=[W_xx]"]
    )
    assert result.returncode == 2 and "pruning.tensors" in result.stderr


@pytest.mark.parametrize("crash_at", [2, 4])  # mid-pruning (lr/best-loss state), mid-lottery
def test_resume_after_a_crash_gives_the_same_metrics(tmp_path, monkeypatch, crash_at):
    overrides = ("training.epochs=2", "lottery_ticket.enabled=true", "data.max_tokens.train=4000")
    assert _train(tmp_path / "straight", *overrides) == 0
    with crash_at_checkpoint(monkeypatch, crash_at):
        _train(tmp_path / "crashed", *overrides)
    assert _train(tmp_path / "crashed", *overrides) == 0
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "crashed")
    for key in ("history", "final", "lottery_ticket"):
        assert resumed[key] == straight[key]


def test_dropout_is_seeded_and_replays_on_resume(tmp_path, monkeypatch):
    """Dropout draws from the global RNG: the driver seeds it per phase and checkpoints it,
    so same seed -> same metrics, and a resumed run equals an uninterrupted one."""
    overrides = ("training.epochs=2", "model.dropout=0.5", "data.max_tokens.train=4000")
    assert _train(tmp_path / "a", *overrides) == 0
    torch.manual_seed(12345)  # whatever the process drew before must not matter
    assert _train(tmp_path / "b", *overrides) == 0
    with crash_at_checkpoint(monkeypatch, 1):
        _train(tmp_path / "crashed", *overrides)
    assert _train(tmp_path / "crashed", *overrides) == 0
    a, b, resumed = (read_metrics(tmp_path / name) for name in ("a", "b", "crashed"))
    assert comparable(a) == comparable(b)
    for key in ("history", "final"):
        assert resumed[key] == a[key]
    no_dropout = _train(tmp_path / "c", *overrides[:1], overrides[2]) == 0 and read_metrics(tmp_path / "c")
    assert no_dropout["final"]["test_loss"] != a["final"]["test_loss"]  # dropout did act


def test_chance_loss_is_the_uniform_guess(tmp_path):
    """The divergence rule's scale: ln V nats per token."""
    from geosparse.runs import new_run

    config = resolve(SMOKE, "language", [f"data.dir={WIKITEXT_EXCERPT}", f"data.cache_dir={tmp_path}"])
    task = new_run(config, 0, torch.device("cpu")).task
    assert task.chance_loss == pytest.approx(math.log(task.vocab_size))
