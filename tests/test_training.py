"""End-to-end training runs (CPU, config/navigation/smoke.yaml): metrics, determinism,
divergence, resume after SIGKILL, checkpoint guard, lottery ticket."""

from __future__ import annotations

import copy
import math
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import packed_step
import pytest
import torch
from torch import nn

from conftest import (
    REPO,
    SMOKE,
    all_finite,
    cli_args,
    comparable,
    crash_at_checkpoint,
    read_metrics,
    subprocess_env,
)
from geosparse.cli import main
from geosparse.config import resolve
from geosparse.pruning import MagnitudePruner, scheduled_fraction
from geosparse.runio import load_checkpoint
from geosparse.runs import Run, new_run
from geosparse.training import Trainer, optimization_step

# With 16 place cells of width 0.12 m in a 2.2 m box, the DoG code is almost flat
# (entropy 2.62 nats vs ln 16 = 2.77), so the task loss can hardly move. A width of
# 0.3 m makes the code informative, and the smoke run then learns within 90 steps.
LEARNS = ["place_cells.sigma=0.3", "training.steps_per_epoch=30", "pruning.target=0.5"]


def train(out: Path, *overrides: str, seed: int = 0) -> dict:
    """Run the CLI in-process; return metrics.json (strictly parsed)."""
    assert main(cli_args(out, *overrides, seed=seed)) == 0
    return read_metrics(out)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("smoke") / "run"
    return out, train(out)


# ------------------------------------------------------------------------ one step
def test_optimization_step_updates_keeps_masks_and_labels_its_phases():
    """The step the Trainer runs (and benchmarks/train_step.py times and profiles)."""
    run = new_run(resolve(SMOKE, "navigation", []), seed=0, device=torch.device("cpu"))
    run.task.start_phase("sparse")
    run.pruner.prune_to(0.5)
    optimizer = run.new_optimizer()
    before = run.model.rnn.weight_hh_l0.detach().clone()
    with torch.profiler.profile() as prof:
        stats = optimization_step(run, optimizer, grad_clip=1.0)
    after = run.model.rnn.weight_hh_l0.detach()
    assert math.isfinite(float(stats["task_loss"]))
    assert not torch.equal(before, after)
    assert torch.equal(after == 0, before == 0)  # pruned stay pruned, kept weights stay non-zero
    labels = {event.key for event in prof.key_averages() if event.key.startswith("geosparse:")}
    assert {
        "geosparse:backward",
        "geosparse:masks",
        "geosparse:forward (RNN, read-out)",
        "geosparse:batch (trajectories, place codes)",
    } <= labels


def test_the_foreach_adamw_trains_bit_identically_to_the_per_tensor_loop():
    """The navigation task's AdamW is the multi-tensor (foreach) one; 20 steps with
    pruning and clipping give the same bits as torch's per-tensor loop (the CPU default)."""

    def train(foreach: bool) -> list[torch.Tensor]:
        run = new_run(resolve(SMOKE, "navigation", []), seed=0, device=torch.device("cpu"))
        run.task.start_phase("sparse")
        run.pruner.prune_to(0.5)
        optimizer = run.new_optimizer()
        assert optimizer.defaults["foreach"] is True
        for group in optimizer.param_groups:
            group["foreach"] = foreach
        for _ in range(20):
            optimization_step(run, optimizer, grad_clip=1.0)
        return [p.detach().clone() for p in run.trainable]

    assert all(torch.equal(a, b) for a, b in zip(train(True), train(False), strict=True))


# ------------------------------------------------------------------------ learning
def test_smoke_run_lowers_the_training_loss(tmp_path):
    history = train(tmp_path / "run", *LEARNS)["history"]
    assert len(history) == 3
    first, last = history[0], history[-1]
    assert last["loss"] < first["loss"] - 0.1, [h["loss"] for h in history]
    assert last["task_loss"] < first["task_loss"] - 0.02, [h["task_loss"] for h in history]
    # the total is task loss + penalty
    for record in history:
        assert record["loss"] == pytest.approx(record["task_loss"] + record["penalty"], rel=1e-5)


def test_unregularised_run_lowers_the_task_loss(tmp_path):
    history = train(tmp_path / "run", *LEARNS, "regularizer.space=none", "pruning.target=0.0")["history"]
    assert all(h["penalty"] == 0 for h in history)
    assert history[-1]["task_loss"] < history[0]["task_loss"] - 0.1


# ------------------------------------------------------------------------ metrics.json
def test_metrics_json_is_complete_and_reports_measured_sparsity(smoke):
    out, metrics = smoke
    config = resolve(SMOKE, "navigation")
    assert metrics["status"] == "completed"
    assert metrics["diverged"] is None
    assert metrics["task"] == "navigation"
    assert metrics["seed"] == 0
    assert metrics["config"] == config
    assert {"geosparse", "torch", "python"} <= set(metrics["versions"])
    assert metrics["versions"]["torch"] == torch.__version__
    assert metrics["device"].startswith("cpu")
    assert isinstance(metrics["wall_time_s"], float) and metrics["wall_time_s"] > 0
    started, finished = (datetime.fromisoformat(metrics[k]) for k in ("started_at", "finished_at"))
    assert started.tzinfo is not None and started <= finished
    assert (finished - started).total_seconds() >= metrics["wall_time_s"] - 1  # seconds resolution
    assert metrics["lottery_ticket"] is None
    assert all_finite(metrics)

    epochs, target = config["training"]["epochs"], config["pruning"]["target"]
    history = metrics["history"]
    assert [h["epoch"] for h in history] == list(range(epochs))
    assert {h["phase"] for h in history} == {"sparse"}
    numel = sum(n * m for n, m in [(32, 16), (32, 2), (32, 32), (16, 32)])
    for e, record in enumerate(history):
        for key in ("loss", "task_loss", "penalty", "error_cm", "sparsity", "sparsity_W_hh"):
            assert isinstance(record[key], float) and math.isfinite(record[key]), key
        assert record["pruned_fraction_target"] == pytest.approx(scheduled_fraction(e, epochs, target))
        # measured, not the target: zeros / numel, exactly the scheduled count of weights
        assert record["sparsity"] == pytest.approx(
            round(record["pruned_fraction_target"] * numel) / numel, abs=2 / numel
        )

    final = metrics["final"]
    assert math.isfinite(final["error_cm"]) and 0 < final["error_cm"] < 400
    assert math.isfinite(final["loss"])
    assert 0 <= final["W_hh_sparsity"] <= 1
    assert final["sparsity"] == pytest.approx(target, abs=1e-3)
    report = final["sparsity_report"]
    assert report["global"]["numel"] == numel
    assert report["global"]["sparsity"] == final["sparsity"]
    assert report["tensors"]["W_hh"]["sparsity"] == pytest.approx(final["W_hh_sparsity"])
    assert set(report["tensors"]) == {"encoder", "W_ih", "W_hh", "decoder"}

    for name in ("checkpoint.pt", "model_sparse.pt", "train.log"):
        assert (out / name).is_file(), name
    assert "done: status=completed" in (out / "train.log").read_text()


def test_saved_sparse_model_matches_the_reported_sparsity(smoke):
    out, metrics = smoke
    saved = load_checkpoint(out / "model_sparse.pt")
    w_hh = saved["model"]["rnn.weight_hh_l0"]
    mask = saved["masks"]["W_hh"]
    assert torch.equal(w_hh == 0, ~mask | (w_hh == 0))
    assert (w_hh[~mask] == 0).all()
    assert float((w_hh == 0).float().mean()) == pytest.approx(metrics["final"]["W_hh_sparsity"])
    zeros = sum(int((saved["masks"][k] == 0).sum()) for k in saved["masks"])
    numel = sum(m.numel() for m in saved["masks"].values())
    assert zeros / numel == pytest.approx(metrics["config"]["pruning"]["target"], abs=1e-3)


# ------------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_metrics(smoke, tmp_path):
    _, first = smoke
    second = train(tmp_path / "again")
    assert comparable(second) == comparable(first)


def test_different_seeds_differ(smoke, tmp_path):
    _, first = smoke
    other = train(tmp_path / "seed1", seed=1)
    assert other["seed"] == 1
    assert [h["loss"] for h in other["history"]] != [h["loss"] for h in first["history"]]
    assert other["final"]["error_cm"] != first["final"]["error_cm"]


def test_rerunning_a_finished_run_reproduces_its_metrics(smoke):
    out, metrics = smoke
    again = train(out)
    assert comparable(again) == comparable(metrics)
    assert again["wall_time_s"] == pytest.approx(metrics["wall_time_s"])


# ------------------------------------------------------------------------ divergence
@pytest.mark.parametrize("override", ["regularizer.strength=1.0e39", "training.lr=1.0e30"])
def test_a_diverging_run_ends_with_status_diverged(tmp_path, override):
    out = tmp_path / "run"
    metrics = train(out, override)  # exit code 0 is asserted by train()
    assert metrics["status"] == "diverged"
    assert {k: metrics["diverged"][k] for k in ("phase", "epoch")} == {"phase": "sparse", "epoch": 0}
    assert "loss" in metrics["diverged"]["reason"]
    assert len(metrics["history"]) == 1
    assert metrics["history"][0]["loss"] is None  # JSON has no NaN / inf
    assert metrics["final"] is None
    assert all_finite(metrics)
    assert "diverged" in (out / "train.log").read_text()


class _FakeTask:
    """A minimal ``Task`` whose loss turns NaN (or ``blow_up``) from a chosen epoch on."""

    chance_loss = 1.0
    task_loss_key = "loss"
    steps_per_epoch = None
    data_description = None
    lr_plateau_key = None

    def __init__(self, steps: int, nan_from_epoch: int | None, blow_up: float = float("nan")):
        self.regularizers = nn.ModuleList()
        self.steps, self.nan_from_epoch, self.calls, self.blow_up = steps, nan_from_epoch, 0, blow_up
        self.phases: list[str] = []

    def optimizer(self, params):
        return torch.optim.SGD(params, lr=0.1)

    def start_phase(self, phase):
        self.phases.append(phase)

    def train_step(self, model):
        epoch = self.calls // self.steps
        self.calls += 1
        loss = ((model.weight - 1.0) ** 2).mean()
        if self.nan_from_epoch is not None and epoch >= self.nan_from_epoch:
            loss = loss * 0 + self.blow_up
        return {"loss": loss}

    def validate(self, model):
        return {"checked": 1.0}

    def evaluate(self, model):
        return {"W_hh_sparsity": float((model.weight == 0).float().mean())}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def _fake_run(task: _FakeTask, config: dict) -> Run:
    torch.manual_seed(0)
    model = nn.Linear(8, 4, bias=False)
    return Run(task, model, MagnitudePruner({"w": model.weight}), config, 0, torch.device("cpu"))


def _fake_config(epochs: int = 4, steps: int = 3, lottery: bool = False) -> dict:
    return {
        "task": "fake",
        "training": {
            "epochs": epochs,
            "steps_per_epoch": steps,
            "finetune_epochs": 0,
            "grad_clip": None,
            "precision": "fp32",
        },
        "pruning": {"target": 0.5, "schedule": "linear"},
        "lottery_ticket": {"enabled": lottery},
    }


def test_each_epoch_logs_its_progress_elapsed_time_and_eta(tmp_path, monkeypatch):
    """One log line per epoch: phase, epoch k/N, the run's elapsed time and the ETA of
    the whole run (every phase) at its mean time per epoch. A fake clock makes every
    epoch (and the evaluation) take 5 s."""
    from geosparse import training

    ticks = iter(range(0, 10_000, 5))
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(ticks))
    Trainer(_fake_run(_FakeTask(steps=3, nan_from_epoch=None), _fake_config(lottery=True)), tmp_path).train()
    lines = [line for line in (tmp_path / "train.log").read_text().splitlines() if " epoch " in line]
    assert len(lines) == 8
    assert "sparse epoch 1/4, elapsed 0:00:05, ETA 0:00:35 | phase=sparse epoch=0" in lines[0]
    assert "sparse epoch 4/4, elapsed 0:00:20, ETA 0:00:20 |" in lines[3]
    assert "lottery epoch 1/4, elapsed 0:00:30, ETA 0:00:18 |" in lines[4]  # 5 s of evaluation between
    assert "lottery epoch 4/4, elapsed 0:00:45, ETA 0:00:00 |" in lines[7]


def test_trainer_records_the_epoch_at_which_the_loss_diverged(tmp_path):
    task = _FakeTask(steps=3, nan_from_epoch=2)
    metrics = Trainer(_fake_run(task, _fake_config()), tmp_path).train()
    assert metrics["status"] == "diverged"
    assert metrics["diverged"] == {"phase": "sparse", "epoch": 2, "reason": "loss is nan"}
    assert [h["loss"] is None for h in metrics["history"]] == [False, False, True]
    assert metrics["history"][0]["checked"] == 1.0
    assert "checked" not in metrics["history"][2]  # no validation after a divergence
    assert metrics["final"] is None
    assert read_metrics(tmp_path)["diverged"]["epoch"] == 2


@pytest.mark.parametrize(("loss", "diverged"), [(5.6e30, True), (101.0, True), (99.0, False)])
def test_a_finite_blow_up_counts_as_diverged(tmp_path, loss, diverged):
    """A loss far above the chance loss (here 1.0; x DIVERGENCE_FACTOR = 100) without
    becoming NaN is a diverged run too, with the rule in the reason."""
    from geosparse.training import DIVERGENCE_FACTOR

    assert DIVERGENCE_FACTOR == 100
    task = _FakeTask(steps=3, nan_from_epoch=1, blow_up=loss)
    metrics = Trainer(_fake_run(task, _fake_config()), tmp_path).train()
    assert (metrics["status"] == "diverged") is diverged
    if diverged:
        assert metrics["diverged"] == {
            "phase": "sparse",
            "epoch": 1,
            "reason": f"task loss {loss:.4g} > 100 x the chance loss 1",
        }
        assert metrics["final"] is None


def test_a_strong_penalty_alone_is_not_divergence():
    from geosparse.training import divergence

    assert divergence(loss=1e6, task_loss=2.0, chance_loss=2.77) is None
    assert divergence(loss=float("inf"), task_loss=2.0, chance_loss=2.77) == "loss is inf"
    assert divergence(loss=300.0, task_loss=280.0, chance_loss=2.77).startswith("task loss 280")


def test_every_task_states_its_chance_loss():
    import math

    from geosparse.tasks.adding import BASELINE_MSE

    for task, expected in (
        ("navigation", lambda c: math.log(c["place_cells"]["n"])),
        ("adding", lambda c: BASELINE_MSE),
    ):
        config = resolve(REPO / "config" / task / "smoke.yaml", task)
        assert new_run(config, 0, torch.device("cpu")).task.chance_loss == pytest.approx(expected(config))


def test_trainer_prunes_on_the_schedule(tmp_path):
    task = _FakeTask(steps=2, nan_from_epoch=None)
    metrics = Trainer(_fake_run(task, _fake_config(epochs=3, steps=2)), tmp_path).train()
    assert metrics["status"] == "completed"
    assert [h["sparsity"] for h in metrics["history"]] == [0.0, 0.25, 0.5]
    assert metrics["final"]["W_hh_sparsity"] == metrics["final"]["sparsity"] == 0.5  # the driver's report


# ------------------------------------------------------------------------ resume
RESUME = ["training.steps_per_epoch=120", "training.epochs=6", "pruning.target=0.8"]
# steps_per_epoch is a multiple of trajectory.chunk (4): each epoch ends on a chunk
# boundary, where resuming the data stream is easiest to get wrong.


def test_a_killed_run_resumes_to_the_same_metrics(tmp_path):
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "geosparse.cli", *cli_args(killed, *RESUME)]
    process = subprocess.Popen(
        args, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90
        while not (killed / "checkpoint.pt").exists():
            assert process.poll() is None, "the run ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 90 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"
    interrupted_at = load_checkpoint(killed / "checkpoint.pt")["epoch"]
    assert 1 <= interrupted_at < 6

    again = subprocess.run(args, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming sparse at epoch" in (killed / "train.log").read_text()
    resumed = read_metrics(killed)

    straight = train(tmp_path / "straight", *RESUME)
    assert resumed["status"] == straight["status"] == "completed"
    assert resumed["history"] == straight["history"]
    assert resumed["final"] == straight["final"]
    assert comparable(resumed) == comparable(straight)


def test_a_checkpoint_from_another_config_is_refused(smoke, tmp_path, capsys):
    out, _ = smoke
    before = (out / "metrics.json").read_bytes()
    checkpoint = (out / "checkpoint.pt").read_bytes()
    assert main(cli_args(out, "regularizer.space=klein")) == 2
    assert "another config or seed" in capsys.readouterr().err
    assert main(cli_args(out, seed=3)) == 2
    assert "another config or seed" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
    assert (out / "checkpoint.pt").read_bytes() == checkpoint


# ------------------------------------------------------------------------ lottery ticket
LOTTERY = ["pruning.target=0.5"]  # W_hh keeps some weights (at 0.9 the smoke run prunes all)


def test_lottery_ticket_run(tmp_path):
    out = tmp_path / "lottery"
    metrics = train(out, *LOTTERY, "lottery_ticket.enabled=true")
    assert metrics["status"] == "completed"
    lottery, final = metrics["lottery_ticket"], metrics["final"]
    assert lottery is not None and final is not None
    assert 0 < final["W_hh_sparsity"] < 1
    assert lottery["W_hh_sparsity"] == final["W_hh_sparsity"]
    assert lottery["sparsity"] == pytest.approx(final["sparsity"])
    assert math.isfinite(lottery["error_cm"])
    phases = [(h["phase"], h["epoch"]) for h in metrics["history"]]
    assert phases == [("sparse", e) for e in range(3)] + [("lottery", e) for e in range(3)]
    assert all(h["pruned_fraction_target"] is None for h in metrics["history"][3:])
    assert all(h["sparsity"] == final["sparsity"] for h in metrics["history"][3:])
    sparse = load_checkpoint(out / "model_sparse.pt")
    ticket = load_checkpoint(out / "model_lottery.pt")
    for name, mask in sparse["masks"].items():
        assert torch.equal(ticket["masks"][name], mask)
    for key in ("rnn.weight_hh_l0", "encoder.weight", "decoder.weight"):
        w_sparse, w_ticket = sparse["model"][key], ticket["model"][key]
        assert torch.equal(w_ticket == 0, w_sparse == 0), key
        survivors = w_sparse != 0
        assert (w_ticket[survivors] != w_sparse[survivors]).float().mean() > 0.99, key
    # the sparse phase is the same as in a run without the lottery ticket
    plain = train(tmp_path / "plain", *LOTTERY)
    assert plain["history"] == metrics["history"][:3]
    assert plain["final"] == final


LEARNED = [
    "regularizer.space=sphere",
    "regularizer.learn_embedding=true",
    "regularizer.strength=1.0",
    "training.steps_per_epoch=5",
]


@pytest.mark.parametrize(
    "crash_at,overrides",
    # with the lottery ticket, checkpoints are written after sparse epochs (1-3), the
    # sparse result (4), lottery epochs (5-7), the lottery result (8) and at the end (9);
    # 8 steps per epoch end every epoch on a data-chunk boundary (chunk = 4)
    [(n, [*LOTTERY, "lottery_ticket.enabled=true", "training.steps_per_epoch=8"]) for n in (1, 3, 4, 5, 6, 8)]
    + [(2, LEARNED)],
)
def test_resume_after_a_crash_at_any_checkpoint(tmp_path, monkeypatch, crash_at, overrides):
    straight = train(tmp_path / "straight", *overrides)

    out = tmp_path / "crashed"
    with crash_at_checkpoint(monkeypatch, crash_at):
        main(cli_args(out, *overrides))
    assert not (out / "metrics.json").exists()
    first_start = load_checkpoint(out / "checkpoint.pt")["started_at"]
    resumed = train(out, *overrides)
    assert resumed["started_at"] == first_start  # the run's start, not the resumption's
    assert resumed["history"] == straight["history"]
    assert resumed["final"] == straight["final"]
    assert resumed["lottery_ticket"] == straight["lottery_ticket"]
    assert comparable(resumed) == comparable(straight)


@pytest.mark.parametrize(
    "overrides",
    [
        ["regularizer.space=klein"],
        ["regularizer.space=sphere", "regularizer.inhibitor=gauss", "regularizer.invert=false"],
        ["regularizer.permute=true"],
        ["regularizer.space=standard", "regularizer.scale=l1_star"],
        ["regularizer.space=standard", "regularizer.scale=l1_star_authors", "regularizer.p=2"],
        ["regularizer.space=none"],
        ["regularizer.inhibitor=square", "regularizer.invert=false"],
        ["pruning.schedule=cubic"],
        ["model.activation=tanh", "training.grad_clip=0.5"],
        ["training.finetune_epochs=2"],
    ],
)
def test_configuration_variants_run_to_completion(tmp_path, overrides):
    metrics = train(tmp_path / "run", *overrides, "training.steps_per_epoch=3")
    assert metrics["status"] == "completed"
    assert all_finite(metrics)
    config = metrics["config"]
    epochs = config["training"]["epochs"] + config["training"]["finetune_epochs"]
    assert len(metrics["history"]) == epochs
    assert metrics["final"]["sparsity"] == pytest.approx(config["pruning"]["target"], abs=1e-3)
    # fine-tuning epochs train at the target
    for record in metrics["history"][config["training"]["epochs"] - 1 :]:
        assert record["pruned_fraction_target"] == pytest.approx(config["pruning"]["target"])


def test_per_tensor_scope_prunes_every_tensor_to_the_target(tmp_path):
    metrics = train(tmp_path / "run", "pruning.scope=per_tensor", "training.steps_per_epoch=3")
    tensors = metrics["final"]["sparsity_report"]["tensors"]
    for name, entry in tensors.items():
        assert entry["zeros"] >= round(0.9 * entry["numel"]), name
        assert entry["sparsity"] == pytest.approx(0.9, abs=0.02), name


def test_pruning_only_the_named_tensors(tmp_path):
    metrics = train(tmp_path / "run", "pruning.tensors=[W_hh]", "training.steps_per_epoch=3")
    report = metrics["final"]["sparsity_report"]
    assert set(report["tensors"]) == {"W_hh"}
    assert metrics["final"]["W_hh_sparsity"] == pytest.approx(0.9, abs=1e-3)


def test_learned_embedding_run_keeps_positions_on_the_sphere(tmp_path):
    out = tmp_path / "run"
    metrics = train(out, *LEARNED)
    assert metrics["status"] == "completed"
    saved = load_checkpoint(out / "checkpoint.pt")
    positions = saved["task_state"]["regularizer"]["positions"]
    assert positions.shape == (32, 3)
    assert torch.allclose(positions.norm(dim=1), torch.ones(32), atol=1e-5)
    from geosparse.regularizer import ModuliRegularizer
    from geosparse.runio import derive_seed

    initial = ModuliRegularizer(32, "sphere", seed=derive_seed(0, "moduli")).positions
    assert not torch.allclose(positions, initial, atol=1e-4), "positions were trained"


def test_zero_threshold_is_applied_on_a_copy_at_evaluation(tmp_path):
    config = resolve(SMOKE, "navigation", ["evaluation.zero_threshold=1.0e+9", "pruning.tensors=[encoder]"])
    run = new_run(config, 0, torch.device("cpu"))
    before = run.model.rnn.weight_hh_l0.detach().clone()
    result = run.evaluate()
    assert result["W_hh_sparsity"] == 1.0
    assert "1e+09" in result["eval_rule"]
    assert torch.equal(run.model.rnn.weight_hh_l0.detach(), before)
    masks_only = new_run(resolve(SMOKE, "navigation", ["pruning.tensors=[encoder]"]), 0, torch.device("cpu")).evaluate()
    assert masks_only["W_hh_sparsity"] == 0.0
    assert masks_only["eval_rule"].startswith("pruning masks only")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@CUDA
def test_resume_on_cuda(tmp_path, monkeypatch):
    """Checkpoints are loaded with map_location=cuda; the data-stream RNG state must still load."""

    def cuda_args(out):
        args = cli_args(out, "training.steps_per_epoch=6")
        args[args.index("--device") + 1] = "cuda"
        return args

    assert main(cuda_args(tmp_path / "straight")) == 0
    straight = read_metrics(tmp_path / "straight")
    with crash_at_checkpoint(monkeypatch, 1):
        main(cuda_args(tmp_path / "crashed"))
    assert main(cuda_args(tmp_path / "crashed")) == 0
    resumed = read_metrics(tmp_path / "crashed")
    assert resumed["status"] == "completed"
    assert len(resumed["history"]) == len(straight["history"])  # GPU runs need not be bitwise equal
    assert "resuming sparse at epoch 1" in (tmp_path / "crashed" / "train.log").read_text()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_precision_is_recorded_and_bf16_keeps_pruned_weights_exactly_zero(tmp_path, device):
    """training.precision: fp32 (TF32 off) and bf16 (bfloat16 autocast of the forward
    pass, float32 master weights) both run, on the CPU and on a GPU; metrics.json says
    what ran; pruned weights of the bf16 model are exact zeros in float32."""
    names = {
        "encoder": "encoder.weight",
        "W_ih": "rnn.weight_ih_l0",
        "W_hh": "rnn.weight_hh_l0",
        "decoder": "decoder.weight",
    }
    results = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        args = cli_args(out, f"training.precision={precision}")
        args[args.index("--device") + 1] = device
        assert main(args) == 0
        metrics = read_metrics(out)
        assert metrics["precision"] == {
            "setting": precision,
            "autocast_dtype": "bfloat16" if precision == "bf16" else None,
            "master_weights": "float32",
            "device_type": device,
            "tf32_matmul": False,
            "tf32_cudnn": False,
            "float32_matmul_precision": "highest",
            # what the recurrence ran in: on CUDA autocast alone would give float16
            "recurrence_dtype": "bfloat16" if precision == "bf16" else "float32",
        }
        saved = torch.load(out / "model_sparse.pt", weights_only=True)
        for group, mask in saved["masks"].items():
            weight = saved["model"][names[group]]
            assert weight.dtype == torch.float32
            assert (weight[~mask] == 0).all() and (~mask).any()
        assert metrics["final"]["W_hh_sparsity"] == pytest.approx(0.9, abs=0.01)
        results[precision] = metrics["final"]["error_cm"]
    assert results["fp32"] != results["bf16"]  # autocast really changed the arithmetic


def test_tf32_precision_sets_the_cuda_switches(tmp_path):
    from geosparse import precision

    try:
        precision.configure("tf32")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        precision.configure("fp32")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        precision.configure("fp32")


def test_bf16_on_a_cpu_without_bfloat16_instructions_warns_in_the_log(tmp_path, monkeypatch):
    """Without AVX512-BF16 or AMX a bf16 step is emulated (11x slower than fp32, measured):
    the run's log says so; fp32, a GPU and a CPU with either instruction set get no warning."""
    from geosparse import precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert main(cli_args(tmp_path / "run", "training.precision=bf16")) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "WARNING training.precision bf16 on a CPU without AVX512-BF16 or AMX" in log
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision.slow_cpu_warning("fp32", cpu) is None
    assert precision.slow_cpu_warning("bf16", cuda) is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert precision.slow_cpu_warning("bf16", cpu) is None


def test_the_packed_runs_benchmark_computes_each_runs_own_loss_and_gradients():
    """benchmarks/packed_step.py times K runs as one batched graph; what it times must be
    the K runs' own computation: per-run losses and all four weights' gradients equal
    those of the K models trained alone (float32, CPU), and the runs really differ."""
    cpu = torch.device("cpu")
    models = packed_step.make_models(3, 8, 16, cpu)
    batch = packed_step.make_batch(3, 4, 5, 8, cpu)
    assert packed_step.max_relative_difference(models, packed_step.stack_weights(models), batch) < 1e-5
    losses = packed_step.packed_losses(packed_step.stack_weights(models), *batch)
    assert losses.shape == (3,) and len(set(losses.tolist())) == 3


def test_a_cuda_recurrence_under_bf16_autocast_runs_in_bfloat16(monkeypatch):
    """``run_rnn`` takes the recurrence out of autocast on CUDA under bfloat16 (whose
    cuDNN RNN wrapper casts to float16) and runs it in bfloat16 itself: the decision
    (CUDA autocast state patched in), and the bfloat16 computation (on the CPU): its
    result is the module's own run on bfloat16 copies, and gradients reach the float32
    master weights."""
    from geosparse.precision import explicit_rnn_dtype, rnn_in, run_rnn

    for dtype, expected in ((torch.bfloat16, torch.bfloat16), (torch.float16, None)):
        monkeypatch.setattr(torch, "is_autocast_enabled", lambda device_type=None: device_type == "cuda")
        monkeypatch.setattr(torch, "get_autocast_dtype", lambda device_type, dtype=dtype: dtype)
        assert explicit_rnn_dtype("cuda") == expected
        assert explicit_rnn_dtype("cpu") is None
    monkeypatch.undo()
    assert explicit_rnn_dtype("cuda") is None  # no autocast

    torch.manual_seed(0)
    for nonlinearity in ("relu", "tanh"):
        rnn = nn.RNN(3, 8, num_layers=2, nonlinearity=nonlinearity, bias=nonlinearity == "tanh")
        inputs, h0 = torch.randn(5, 4, 3), torch.randn(2, 4, 8)
        output, hidden = rnn_in(rnn, inputs, h0, torch.bfloat16)
        assert output.dtype == hidden.dtype == torch.bfloat16
        twin = copy.deepcopy(rnn).to(torch.bfloat16)
        expected_output, expected_hidden = twin(inputs.to(torch.bfloat16), h0.to(torch.bfloat16))
        assert torch.equal(output, expected_output) and torch.equal(hidden, expected_hidden)
        output.float().sum().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in rnn.parameters())
        with torch.autocast("cpu", dtype=torch.bfloat16):  # elsewhere: exactly the module
            assert torch.equal(run_rnn(rnn, inputs, h0)[0], rnn(inputs, h0)[0])
