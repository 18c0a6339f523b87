"""Devices, checked on a CPU: every random stream is a CPU generator, files hold CPU
tensors, a run trained or resumed on another device (stood in for by ``meta``, which has
the shapes but no data) loads and resumes here; a GPU that is not there fails at once,
and the log says what ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, WIKITEXT_EXCERPT, cli_args, crash_at_checkpoint, read_metrics, subprocess_env
from geosparse.cli import main
from geosparse.config import resolve
from geosparse.pruning import lottery_ticket_reinit
from geosparse.runio import load_checkpoint, save_checkpoint
from geosparse.runs import load_finished, new_run
from geosparse.sweep import sweep_navigation
from geosparse.training import Trainer

TASKS = ("navigation", "language", "adding")
OFF_CPU = torch.device("meta")
"""Stands for a GPU: tensors there have no data a CPU could read."""


def _smoke(task: str) -> Path:
    return REPO / "config" / task / "smoke.yaml"


def _sets(task: str, out: Path) -> list[str]:
    if task == "language":
        return [f"data.cache_dir={out.parent / 'cache'}", f"data.dir={WIKITEXT_EXCERPT}", "data.max_tokens.train=2000"]
    return []


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _train(task: str, out: Path, *overrides: str, device: str = "cpu") -> int:
    args = ["train", task, "--config", str(_smoke(task)), "--seed", "0", "--out", str(out), "--device", device]
    for assignment in (*_sets(task, out), "training.epochs=2", "lottery_ticket.enabled=true", *overrides):
        args += ["--set", assignment]
    return main(args)


def _tensors(value):
    """Every tensor in nested dicts / lists / tuples."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def test_a_run_file_with_a_cuda_sized_stream_state_loads_and_sweeps(tmp_path):
    """A CUDA generator's state is 16 bytes (seed, offset); a run file holding one, as a
    GPU run wrote them, loads on a CPU: a finished run never restores the training stream."""
    run = tmp_path / "run"
    assert _train("navigation", run, "lottery_ticket.enabled=false") == 0
    before = sweep_navigation(run, [0.5, 0.95])
    saved = load_checkpoint(run / "model_sparse.pt")
    saved["task_state"]["stream"]["chunk_start_state"] = torch.zeros(16, dtype=torch.uint8)
    save_checkpoint(run / "model_sparse.pt", saved)

    finished = load_finished(run, task="navigation")
    assert finished.run.pruner.report()["global"]["sparsity"] == before["run_sparsity"]
    assert sweep_navigation(run, [0.5, 0.95]) == before


@pytest.mark.parametrize("task", TASKS)
def test_each_task_resumes_with_its_checkpoint_mapped_off_the_cpu(tmp_path, monkeypatch, task):
    """A trainer on another device (``meta`` here, ``cuda`` on a GPU node) loads its
    checkpoint onto the CPU and copies it over; a checkpoint loaded onto the device
    itself handed the adding task's generator a device tensor ("RNG state must be a
    torch.ByteTensor"), and a GPU optimizer's step counters a host sync per step."""
    assert _train(task, tmp_path / "straight") == 0
    with crash_at_checkpoint(monkeypatch, 4):  # after the first lottery epoch
        _train(task, tmp_path / "crashed")

    original_init = Trainer.__init__

    def init_off_cpu(self, run, out, **options):
        original_init(self, run, out, **options)
        self.device = OFF_CPU  # what the trainer loads its checkpoint for

    monkeypatch.setattr(Trainer, "__init__", init_off_cpu)
    assert _train(task, tmp_path / "crashed") == 0
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "crashed")
    for key in ("history", "final", "lottery_ticket"):
        assert resumed[key] == straight[key]


@pytest.mark.parametrize("task", TASKS)
def test_streams_built_for_another_device_draw_from_cpu_generators(tmp_path, task):
    """Every random stream of a run on ``meta`` (a GPU) is a CPU generator, in the state
    of the CPU run's after the same steps (the same numbers on every device), and every
    generator state it saves is a CPU byte tensor. Language has no stream of its own."""
    config = resolve(_smoke(task), task, _sets(task, tmp_path / "run"))
    cpu, off = new_run(config, 0, torch.device("cpu")), new_run(config, 0, OFF_CPU)
    assert {p.device for p in off.model.parameters()} == {OFF_CPU}
    for run in (cpu, off):
        run.task.start_phase("sparse")
        for _ in range(2):
            run.task.train_step(run.model)
    generators = [value for value in vars(off.task).values() if isinstance(value, torch.Generator)]
    if task == "navigation":
        generators.append(off.task.stream.generator)
    assert len(generators) == {"navigation": 1, "language": 0, "adding": 1}[task]
    assert {g.device for g in generators} <= {torch.device("cpu")}
    states = [t for t in _tensors(off.task.state_dict()) if t.dtype == torch.uint8]
    cpu_states = [t for t in _tensors(cpu.task.state_dict()) if t.dtype == torch.uint8]
    assert len(states) == len(generators)
    for state, cpu_state in zip(states, cpu_states, strict=True):
        assert state.device == torch.device("cpu")
        assert torch.equal(state, cpu_state)
    if task == "adding":
        for split, tensors in cpu.task.data.items():
            assert [t.shape for t in tensors] == [t.shape for t in off.task.data[split]]
            assert {t.device for t in off.task.data[split]} == {OFF_CPU}


def test_the_lottery_reinitialisation_draws_on_the_cpu(monkeypatch):
    """``reset_parameters`` runs on a CPU copy, never on the device (nor its RNG); a CPU
    model gets the same values as resetting it in place under the seed."""
    config = resolve(_smoke("navigation"), "navigation", [])
    cpu, off = new_run(config, 0, torch.device("cpu")), new_run(config, 0, OFF_CPU)
    reference = new_run(config, 0, torch.device("cpu")).model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        for module in reference.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    touched: list[torch.device] = []
    for cls in {type(m) for m in off.model.modules() if hasattr(m, "reset_parameters")}:

        def reset(self, original=cls.reset_parameters):
            touched.append(next(self.parameters()).device)
            original(self)

        monkeypatch.setattr(cls, "reset_parameters", reset)
    lottery_ticket_reinit(off.model, off.pruner, seed=7)
    assert touched and set(touched) == {torch.device("cpu")}

    lottery_ticket_reinit(cpu.model, cpu.pruner, seed=7)
    for a, b in zip(cpu.model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_files_hold_cpu_tensors_and_cpu_files_are_written_as_they_are():
    """``save_checkpoint`` moves every tensor to the CPU first (``to_cpu``; a ``meta``
    tensor, which has no data, shows the move is tried); a CPU state is passed on as is,
    so a CPU run's files stay byte-identical."""
    from geosparse.runio import to_cpu

    with pytest.raises(NotImplementedError, match="meta"):
        to_cpu({"model": {"w": torch.ones(1)}, "order": [torch.empty(2, device=OFF_CPU)]})
    state = torch.nn.Linear(2, 2).state_dict()
    nested = {"model": state, "list": [torch.arange(2)], "n": 3}
    assert to_cpu(nested) is nested and to_cpu(state) is state


def test_cuda_on_a_torch_that_cannot_use_it_exits_at_once_naming_the_build(tmp_path, monkeypatch, capsys):
    """``--device cuda`` (the paper grid's GPU tasks) never falls back to the CPU: exit 2
    before any work, naming the torch build (here a CPU-only one, or no GPU visible)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = cli_args(tmp_path / "run")
    args[args.index("--device") + 1] = "cuda"
    assert main(args) == 2
    error = capsys.readouterr().err
    assert f"torch {torch.__version__}" in error and "--device cuda" in error
    assert not (tmp_path / "run").exists()


def test_cuda_with_no_visible_gpu_exits_2_in_a_fresh_process(tmp_path):
    args = cli_args(tmp_path / "run")
    args[args.index("--device") + 1] = "cuda"
    env = {**subprocess_env(), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "geosparse", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert torch.__version__ in done.stderr and "Traceback" not in done.stderr


def test_the_first_line_of_train_log_says_what_runs(tmp_path):
    """Device (and how ``auto`` chose it), precision, torch and CUDA versions, threads."""
    args = cli_args(tmp_path / "run", "training.epochs=1", "training.steps_per_epoch=1")
    args[args.index("--device") + 1] = "auto"
    assert main(args) == 0
    first = (tmp_path / "run" / "train.log").read_text().splitlines()[0]
    cuda = "available" if torch.cuda.is_available() else "not available"
    for part in (f"--device auto: CUDA {cuda}", "precision fp32", f"torch {torch.__version__}", "threads"):
        assert part in first, (part, first)


@CUDA
@pytest.mark.parametrize("task", TASKS)
def test_each_task_trains_and_resumes_on_cuda(tmp_path, monkeypatch, task):
    """On a GPU: every task trains, and a run killed inside its lottery phase resumes
    (checkpoint loaded onto the CPU, state copied to the GPU) and completes."""
    assert _train(task, tmp_path / "straight", device="cuda") == 0
    with crash_at_checkpoint(monkeypatch, 4):  # after the first lottery epoch
        _train(task, tmp_path / "crashed", device="cuda")
    assert _train(task, tmp_path / "crashed", device="cuda") == 0
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "crashed")
    assert resumed["status"] == straight["status"] == "completed"
    assert resumed["device"].startswith("cuda") and len(resumed["history"]) == len(straight["history"])
    assert "resuming lottery at epoch 1" in (tmp_path / "crashed" / "train.log").read_text()
    saved = load_checkpoint(tmp_path / "crashed" / "model_sparse.pt")
    assert {t.device.type for t in _tensors(saved)} == {"cpu"}  # what a CPU node loads


@CUDA
def test_a_cuda_trained_run_loads_and_sweeps_on_a_cpu_node(tmp_path):
    """A run trained on a GPU, swept by a process that sees no GPU (a CPU node)."""
    run = tmp_path / "run"
    assert _train("navigation", run, "lottery_ticket.enabled=false", device="cuda") == 0
    env = {**subprocess_env(), "CUDA_VISIBLE_DEVICES": ""}
    sweep = [sys.executable, "-m", "geosparse", "sweep", "navigation", "--run", str(run), "--levels", "0.5", "0.95"]
    done = subprocess.run([*sweep, "--out", str(tmp_path / "sweep.json")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert len(json.loads((tmp_path / "sweep.json").read_text())["levels"]) == 2
