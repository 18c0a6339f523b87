"""Hostile input, as a user meets it: every case exits 2 (or raises a ValueError naming the
key or file), before any work, and leaves nothing behind. In-process, seconds in all."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tables_io
import torch

import geosparse.runio as runio
from conftest import REPO, SMOKE, cli_args, comparable, read_metrics, subprocess_env
from geosparse import config as geoconfig
from geosparse.cli import main
from geosparse.rundir import LOCK_NAME, RunFolderError, RunLock

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
"""A line of the run's log (``train.log`` is echoed to stderr)."""


def _exit_2(capsys, tmp_path, overrides=(), config=SMOKE, out=None, device="cpu") -> str:
    """Run `geosparse train navigation`; assert exit 2 and no run folder; return stderr."""
    out = out or tmp_path / "run"
    args = cli_args(out, *overrides, config=config)
    args[args.index("--device") + 1] = device
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    # the error, after at most the run's first log line (it names the device), no traceback
    message = "\n".join(line for line in err.splitlines() if not LOG_LINE.match(line))
    assert message.startswith("geosparse: error:") and "Traceback" not in err, err
    return err


# 1. NaN and infinity --------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,key",
    [
        ("training.lr=1e400", "training.lr"),  # parses as inf
        ("training.lr=.inf", "training.lr"),
        ("training.lr=.nan", "training.lr"),
        ("training.weight_decay=.inf", "training.weight_decay"),
        ("place_cells.sigma=.inf", "place_cells.sigma"),
        ("evaluation.zero_threshold=.nan", "evaluation.zero_threshold"),
        ("regularizer.strength=-.inf", "regularizer.strength"),
        ("training.grad_clip=.nan", "training.grad_clip"),
    ],
)
def test_nan_and_infinity_are_refused_before_any_work(capsys, tmp_path, override, key):
    """A JSON-schema minimum never rejects NaN, and 1e400 is inf: every number of a run
    config must be finite, refused at once (key named, nothing written)."""
    err = _exit_2(capsys, tmp_path, [override])
    assert f"config key '{key}'" in err and "finite" in err
    assert not (tmp_path / "run").exists()


def test_nonfinite_keys_walks_sections_and_lists():
    from geosparse.config import nonfinite_keys

    config = {"a": {"b": float("nan"), "c": [1.0, float("inf")]}, "d": 2, "e": "inf"}
    assert nonfinite_keys(config) == ["a.b", "a.c.1"]


# 2. Corrupt or malicious checkpoints ----------------------------------------------------


class _Payload:
    """Unpickling this runs ``os.system``: weights_only loading must refuse it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoints(tmp_path) -> dict[str, bytes]:
    good = tmp_path / "good.pt"
    runio.save_checkpoint(good, {"weights": torch.arange(1000.0)})
    raw = good.read_bytes()
    marker = tmp_path / "pwned"
    return {
        "truncated": raw[: len(raw) // 2],
        "random": os.urandom(4096),
        "empty": b"",
        "malicious": pickle.dumps({"model": _Payload(str(marker))}),
    }


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "malicious"])
def test_bad_checkpoint_is_named_and_never_loaded_unsafely(capsys, tmp_path, kind):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(_checkpoints(tmp_path)[kind])
    err = _exit_2(capsys, tmp_path, out=out)
    assert str(out / "checkpoint.pt") in err and "not a valid geosparse checkpoint" in err
    assert "Delete it to start over" in err
    assert "weights_only=False" not in err  # never suggest unsafe loading
    assert not (tmp_path / "pwned").exists()  # the payload never ran
    assert not (out / "metrics.json").exists()


def test_load_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "model_sparse.pt"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"model_sparse\.pt is not a valid geosparse checkpoint"):
        runio.load_checkpoint(path)


# 3. Malformed run files -----------------------------------------------------------------


def test_malformed_metrics_json_is_named_by_the_cli_and_the_tables(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"status": "completed", "config": {"task": "navi')
    code = main(["sweep", "navigation", "--run", str(run), "--levels", "0.9", "--out", str(tmp_path / "sweep.json")])
    err = capsys.readouterr().err
    assert code == 2 and str(run / "metrics.json") in err and "not valid JSON" in err
    with pytest.raises(ValueError, match=r"run/metrics\.json is not valid JSON"):
        list(tables_io.read_run_files([str(run / "metrics.json")], [{}], "metrics.json"))
    assert not (tmp_path / "sweep.json").exists()


# 4. and 5. Config files, --out, --device, sizes -------------------------------------------


def test_extends_cycle(capsys, tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    err = _exit_2(capsys, tmp_path, config=tmp_path / "a.yaml")
    assert "cycle" in err and "a.yaml -> " in err


def test_extends_must_be_one_file(capsys, tmp_path):
    (tmp_path / "a.yaml").write_text(f"extends: [{SMOKE}]\n")
    err = _exit_2(capsys, tmp_path, config=tmp_path / "a.yaml")
    assert "'extends' must be one file name" in err and "a.yaml" in err


def test_yaml_syntax_error_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {SMOKE}\nmodel:\n  n_hidden: [64\ntraining: {{lr: 1}}\n")
    err = _exit_2(capsys, tmp_path, config=bad)
    assert f"config file {bad}: not valid YAML at line" in err


def test_duplicate_keys_are_refused_naming_key_and_line(capsys, tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text(f"extends: {SMOKE}\nmodel:\n  n_hidden: 64\ntraining:\n  lr: 0.01\nmodel:\n  activation: relu\n")
    err = _exit_2(capsys, tmp_path, config=dup)
    assert "duplicate key 'model' at line 6 (first at line 2)" in err and str(dup) in err
    with pytest.raises(ValueError, match="duplicate key 'lr'"):
        (tmp_path / "d2.yaml").write_text("training:\n  lr: 1\n  lr: 2\n")
        geoconfig.load_yaml(tmp_path / "d2.yaml")


def test_invalid_set_value_is_named(capsys, tmp_path):
    err = _exit_2(capsys, tmp_path, ["model.n_hidden=[64"])
    assert "--set model.n_hidden" in err and "not valid YAML" in err


def test_out_that_is_a_file_or_cannot_be_created(capsys, tmp_path):
    existing = tmp_path / "afile"
    existing.write_text("x")
    err = _exit_2(capsys, tmp_path, out=existing)
    assert f"--out {existing}: exists and is not a folder" in err
    assert existing.read_text() == "x"
    err = _exit_2(capsys, tmp_path, out=existing / "sub")
    assert "cannot create the run folder" in err


def test_out_in_a_folder_that_is_not_writable(capsys, tmp_path, monkeypatch):
    """(os.access stands in for a read-only folder: root, as in CI, may write anywhere.)"""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    err = _exit_2(capsys, tmp_path, out=tmp_path / "a" / "run")
    assert f"--out {tmp_path / 'a' / 'run'}: {tmp_path} is not writable" in err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("device", ["tpu7", "mps", "cuda:x"])
def test_unknown_device(capsys, tmp_path, device):
    err = _exit_2(capsys, tmp_path, device=device)
    assert f"--device {device}" in err and "auto, cpu, cuda" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override,key", [("model.n_hidden=1000000000", "model.n_hidden"), ("place_cells.n=1000000000", "place_cells.n")]
)
def test_sizes_have_upper_bounds(capsys, tmp_path, override, key):
    err = _exit_2(capsys, tmp_path, [override])
    assert key in err and "maximum of 16384" in err


# 10. Unknown keys list the allowed ones -------------------------------------------------


def test_unknown_key_lists_allowed_keys(capsys, tmp_path):
    err = _exit_2(capsys, tmp_path, ["model.n_hiden=64"])
    assert "n_hiden" in err and "allowed keys: ['activation', 'n_hidden']" in err
    err = _exit_2(capsys, tmp_path, ["optimiser=adam"])
    assert "optimiser" in err and "'lottery_ticket'" in err and "'training'" in err


# 6. and 7. Files left by a kill, permissions of outputs ----------------------------------


def test_stale_temp_files_are_removed_at_the_next_start(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".checkpoint.pt.abc123.tmp", run / ".model_sparse.pt.x9.tmp"]
    for path in stale:
        path.write_bytes(b"\x00" * 100)
    (run / "keep.txt").write_text("mine")
    assert sorted(runio.remove_stale_temps(run)) == sorted(stale)
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]
    assert main(cli_args(run)) == 0  # a real start also cleans them
    assert not list(run.glob(".*.tmp"))


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        runio.write_json(tmp_path / "a.json", {"x": 1})
        runio.save_checkpoint(tmp_path / "b.pt", {"x": torch.ones(1)})
    finally:
        os.umask(old)
    for name in ("a.json", "b.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_resolve_still_accepts_the_shipped_configs():
    for task in ("navigation", "language", "adding"):
        for path in (REPO / "config" / task).glob("*.yaml"):
            assert geoconfig.resolve(path, task)["task"] == task


def test_yaml_merge_keys_still_load_and_complex_keys_are_named(capsys, tmp_path):
    merged = tmp_path / "merge.yaml"
    merged.write_text("base: &b {lr: 0.01, epochs: 2}\ntraining: {<<: *b, epochs: 3}\n")
    assert geoconfig.load_yaml(merged)["training"] == {"lr": 0.01, "epochs": 3}
    odd = tmp_path / "odd.yaml"
    odd.write_text(f"extends: {SMOKE}\n? [1, 2]\n: x\n")
    err = _exit_2(capsys, tmp_path, config=odd)
    assert "is not a plain value" in err and str(odd) in err


# 11. One writer per run folder ----------------------------------------------------------

SLOW_STEPS = (
    "import sys, time; import geosparse.training as t; step = t.optimization_step; "
    "t.optimization_step = lambda *a, **k: (time.sleep({delay}), step(*a, **k))[1]; "
    "from geosparse.cli import main; sys.exit(main(sys.argv[1:]))"
)
"""``python -c`` program: the CLI with every training step slowed by ``delay`` seconds
(numerics unchanged), so that a test can act while a run is inside an epoch."""


def _slow_cli(args: list[str], delay: float = 0.05) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_STEPS.format(delay=delay), *args],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epochs(out: Path, epochs: int, process: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until ``out/train.log`` has logged ``epochs`` epochs of the run."""
    deadline = time.monotonic() + timeout
    log = out / "train.log"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended early ({process.returncode}): {process.stderr.read()[-2000:]}")
        if log.exists() and log.read_text().count(" epoch=") >= epochs:
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no progress in {log} after {timeout} s")


def test_a_second_writer_is_refused_and_the_first_result_is_intact(capsys, tmp_path):
    out = tmp_path / "run"
    first = _slow_cli(cli_args(out, seed=1))
    try:
        _wait_for_epochs(out, 1, first)
        code = main(cli_args(out, seed=2))
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"{out} is being written by pid {first.pid} on {socket.gethostname()}" in err
        assert "Traceback" not in err
    finally:
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-2000:]
    metrics = read_metrics(out)
    assert metrics["seed"] == 1 and metrics["status"] == "completed"
    assert not (out / LOCK_NAME).exists()  # nothing but the run's files stays
    assert main(cli_args(out, seed=1)) == 0  # the lock was released


def test_a_finished_run_is_not_mixed_with_another_config_or_seed(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(cli_args(out, "lottery_ticket.enabled=true")) == 0
    (out / "checkpoint.pt").unlink()  # as the workflow does when a run ends
    before = (out / "metrics.json").read_bytes()
    for changed in (cli_args(out), cli_args(out, "lottery_ticket.enabled=true", seed=3)):
        code = main(changed)
        err = capsys.readouterr().err
        assert code == 2, err
        assert "holds a finished run of another config or seed" in err and f"rm -r {out}" in err
    assert (out / "metrics.json").read_bytes() == before and (out / "model_lottery.pt").exists()
    # the workflow deletes metrics.json before it reruns a job with changed params: the
    # old run's models go too, none survives beside the new run
    (out / "metrics.json").unlink()
    assert main(cli_args(out)) == 0
    assert sorted(p.name for p in out.glob("model_*.pt")) == ["model_sparse.pt"]
    assert read_metrics(out)["config"]["lottery_ticket"]["enabled"] is False


def test_run_lock_names_its_holder_and_is_released(tmp_path):
    with RunLock(tmp_path / "run"):
        holder = (tmp_path / "run" / LOCK_NAME).read_text()
        assert holder == f"pid {os.getpid()} on {socket.gethostname()}\n"
        with pytest.raises(RunFolderError, match=f"being written by pid {os.getpid()}"):
            RunLock(tmp_path / "run").__enter__()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with RunLock(tmp_path / "run"):
        pass


# 12. SIGINT and SIGTERM: checkpoint now, one line, 130 / 143 ----------------------------

TASK_SMOKE = {task: REPO / "config" / task / "smoke.yaml" for task in ("navigation", "language", "adding")}
_uninterrupted: dict[str, dict] = {}


def _task_args(task: str, out: Path) -> list[str]:
    args = cli_args(out, config=TASK_SMOKE[task])
    args[1] = task
    return args


@pytest.mark.parametrize(
    "task,signum",
    [(task, signal.SIGTERM) for task in TASK_SMOKE] + [("navigation", signal.SIGINT)],
    ids=[*(f"{task}-SIGTERM" for task in TASK_SMOKE), "navigation-SIGINT"],
)
def test_a_signal_mid_epoch_checkpoints_and_the_rerun_is_identical(capsys, tmp_path, task, signum):
    if task not in _uninterrupted:
        assert main(_task_args(task, tmp_path / "reference")) == 0
        _uninterrupted[task] = comparable(read_metrics(tmp_path / "reference"))
    out = tmp_path / "run"
    process = _slow_cli(_task_args(task, out), delay=0.1)
    _wait_for_epochs(out, 1, process)
    time.sleep(0.3)  # into the next epoch (its steps take 0.1 s each)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and f"stopped by {signal.Signals(signum).name} at sparse" in lines[-1]
    assert "rerun the same command to resume" in lines[-1]
    saved = runio.load_checkpoint(out / "checkpoint.pt")
    assert saved["partial"] is not None and saved["partial"]["step"] > 0, "the signal landed between epochs"
    assert not (out / "metrics.json").exists()
    capsys.readouterr()
    assert main(_task_args(task, out)) == 0
    assert (
        f"resuming sparse at epoch {saved['epoch']}, step {saved['partial']['step']}" in (out / "train.log").read_text()
    )
    assert comparable(read_metrics(out)) == _uninterrupted[task]


# 13. One schema per run file, checked before use ----------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(cli_args(out)) == 0
    return out


def _edit_metrics(metrics: dict, how: str):
    if how == "a list":
        return [metrics]
    if how == "status NaN":
        return {**metrics, "status": float("nan")}
    if how == "config a string":
        return {**metrics, "config": "navigation"}
    if how == "schema 2":
        return {**metrics, "schema_version": 2}
    if how == "no seed":
        return {k: v for k, v in metrics.items() if k != "seed"}
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how,key",
    [
        ("a list", "must hold a mapping"),
        ("status NaN", "key 'status': must be str"),
        ("config a string", "key 'config': must be dict"),
        ("schema 2", "key 'schema_version': version 2"),
        ("no seed", "key 'seed': missing"),
    ],
)
def test_a_metrics_json_that_breaks_its_schema_is_named(capsys, tmp_path, finished_run, how, key):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    metrics = read_metrics(run)
    (run / "metrics.json").write_text(json.dumps(_edit_metrics(metrics, how)))  # NaN: as a hand edit would
    code = main(["export", "--run", str(run), "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"geosparse: error: {run / 'metrics.json'}") and key in err, err
    assert not (tmp_path / "m.pt").exists()


def _edit_model(saved: dict, how: str):
    if how == "a list":
        return [saved]
    if how == "no config":
        return {k: v for k, v in saved.items() if k != "config"}
    if how == "no masks":
        return {k: v for k, v in saved.items() if k != "masks"}
    if how == "wrong shape":
        return {**saved, "model": {**saved["model"], "rnn.weight_hh_l0": torch.zeros(3, 3)}}
    if how == "unknown task":
        return {**saved, "config": {**saved["config"], "task": "chess"}}
    if how == "huge n_hidden":
        return {**saved, "config": {**saved["config"], "model": {**saved["config"]["model"], "n_hidden": 2_000_000}}}
    if how == "version 2":
        return {**saved, "version": 2}
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how,key",
    [
        ("a list", "must hold a mapping"),
        ("no config", "key 'config': missing"),
        ("no masks", "key 'masks': missing"),
        ("wrong shape", "key 'model.rnn.weight_hh_l0': shape (3, 3)"),
        ("unknown task", "key 'config.task': unknown task 'chess'"),
        ("huge n_hidden", "config key 'model.n_hidden': 2000000 is greater than the maximum of 16384"),
        ("version 2", "key 'version': format version 2"),
    ],
)
def test_a_model_file_that_breaks_its_schema_is_named_before_anything_is_built(
    capsys, tmp_path, finished_run, how, key
):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    model = run / "model_sparse.pt"
    torch.save(_edit_model(runio.load_checkpoint(model), how), model)
    code = main(["export", "--run", str(run), "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"geosparse: error: {model}") and key in err, err


@pytest.mark.parametrize(
    "how,key",
    [
        ("a list", "must hold a mapping"),
        ("wrong shape", "key 'model.rnn.weight_hh_l0': shape (3, 3)"),
        ("step out of range", "key 'partial.step': must be an integer in [0, 10)"),
        ("epoch a float", "key 'epoch': must be int"),
        ("start a number", "key 'started_at': must be str or null, got float"),
    ],
)
def test_a_checkpoint_that_breaks_its_schema_is_named(capsys, tmp_path, finished_run, how, key):
    out = tmp_path / "run"
    out.mkdir()
    saved = runio.load_checkpoint(finished_run / "checkpoint.pt")
    saved = {**saved, "epoch": 1, "status": "running", "results": {}}
    if how == "step out of range":
        saved["partial"] = {"step": 10, "sums": {}}
    elif how == "epoch a float":
        saved["epoch"] = 1.0
    elif how == "start a number":
        saved["started_at"] = 1.7e9
    else:
        saved = _edit_model(saved, how)
    torch.save(saved, out / "checkpoint.pt")
    err = _exit_2(capsys, tmp_path, out=out)
    assert str(out / "checkpoint.pt") in err and key in err, err


# 14. Values that fit a loose schema but not the code or the machine ---------------------


@pytest.mark.parametrize(
    "override,key,problem",
    [
        ("model.n_hidden=1.6e1", "model.n_hidden", "is not of type 'integer'"),
        ("place_cells.seed=18446744073709551616", "place_cells.seed", "maximum of 4294967295"),
        ("trajectory.batch_size=1000000000000", "trajectory.batch_size", "maximum of 4096"),
        ("training.steps_per_epoch=1e12", "training.steps_per_epoch", "is not of type 'integer'"),
        ("evaluation.batches=1000000000", "evaluation.batches", "maximum of 100000"),
    ],
)
def test_sizes_are_integers_within_bounds(capsys, tmp_path, override, key, problem):
    err = _exit_2(capsys, tmp_path, [override])
    assert f"config key '{key}'" in err and problem in err, err
    assert not (tmp_path / "run").exists()


def test_other_tasks_sizes_are_bounded():
    adding = geoconfig.load_yaml(TASK_SMOKE["adding"])
    for key, value in [("train_samples", 10**12), ("length", 4000.0)]:
        with pytest.raises(ValueError, match=f"config key 'data.{key}'"):
            geoconfig.validate({**adding, "task": "adding", "data": {**adding["data"], key: value}}, "adding")
    language = geoconfig.load_yaml(TASK_SMOKE["language"])
    tokens = {**language["data"]["max_tokens"], "train": 4000.0}
    with pytest.raises(ValueError, match=r"config key 'data\.max_tokens\.train'"):
        geoconfig.validate(
            {**language, "task": "language", "data": {**language["data"], "max_tokens": tokens}}, "language"
        )


@pytest.mark.parametrize(
    "args,problem",
    [
        (["--batch", "1000000000"], "--batch: must be in [1, 4096]"),
        (["--steps", "1000000000"], "--steps: must be in [1, 1000]"),
        (["--min-run-time", "inf"], "--min-run-time: must be a finite number"),
        (["--min-run-time", "nan"], "--min-run-time: must be a finite number"),
        (["--min-run-time", "-1"], "--min-run-time: must be a finite number"),
    ],
)
def test_benchmark_inference_sizes_are_bounded(capsys, tmp_path, args, problem):
    with pytest.raises(SystemExit) as stop:
        main(["benchmark-inference", "--run", str(tmp_path), "--out", str(tmp_path / "b.json"), *args])
    assert stop.value.code == 2 and problem in capsys.readouterr().err


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "text,problem",
    [
        (BILLION_LAUGHS, "aliases expand to more than"),
        ("model: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 32 levels"),
        ("loop: &l [*l]\n", "a recursive alias"),
    ],
    ids=["billion-laughs", "5000-deep", "recursive"],
)
def test_yaml_bombs_and_deep_nesting_are_refused_at_once(capsys, tmp_path, text, problem):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"extends: {SMOKE}\n{text}")
    started = time.monotonic()
    err = _exit_2(capsys, tmp_path, config=bomb)
    assert problem in err and str(bomb) in err and time.monotonic() - started < 10


def test_a_set_key_5000_levels_deep_is_refused(capsys, tmp_path):
    err = _exit_2(capsys, tmp_path, [".".join(["k"] * 5000) + "=1"])
    assert "a key of more than 32 parts" in err


# 15. Files that are not text ------------------------------------------------------------


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"\x00\x01\x02binary", "is a binary file"),
        ("model: {n_hidden: 64}  # \xe9t\xe9\n".encode("latin-1"), "is not UTF-8"),
    ],
    ids=["binary", "latin-1"],
)
def test_a_config_that_is_not_utf8_text_is_named(capsys, tmp_path, content, problem):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    err = _exit_2(capsys, tmp_path, config=bad)
    assert f"config file {bad} {problem}" in err
    err = _exit_2(capsys, tmp_path, config=tmp_path / "missing.yaml")
    assert f"config file not found: {tmp_path / 'missing.yaml'}" in err
    err = _exit_2(capsys, tmp_path, config=tmp_path)
    assert f"config file {tmp_path} is a folder" in err


@pytest.mark.parametrize(
    "content,problem",
    [
        ("splits: {train: {lines: lots}}\n", "missing or malformed key"),
        ("splits: [1\n", "not valid YAML"),
        ("\xff\xfe".encode("latin-1"), "is not UTF-8"),
        (None, "wikitext2 data config not found"),
    ],
    ids=["lines-lots", "malformed", "non-utf8", "missing"],
)
def test_a_bad_wikitext2_data_config_is_named(capsys, tmp_path, content, problem):
    spec = tmp_path / "wikitext2.yaml"
    if isinstance(content, str):
        spec.write_text(content)
    elif content is not None:
        spec.write_bytes(content)
    code = main(["data", "wikitext2", "--config", str(spec), "--dest", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and "Traceback" not in err, err
    assert not (tmp_path / "data").exists()


def test_a_corpus_file_that_is_not_utf8_is_named(capsys, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "data" / "wikitext-2-excerpt", corpus)
    bad = next(p for p in corpus.iterdir() if "valid" in p.name)
    bad.write_bytes(bad.read_bytes() + b"\xff\xfe")
    args = [
        *_task_args("language", tmp_path / "run"),
        "--set",
        f"data.dir={corpus}",
        "--set",
        f"data.cache_dir={tmp_path}",
    ]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and f"corpus file {bad} is not UTF-8 text" in err, err


# 16. Output paths checked before work; write errors in one line --------------------------


def test_out_symlinks_empty_and_devices_are_refused_before_work(capsys, tmp_path, finished_run):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "run")
    assert "cannot resolve it" in _exit_2(capsys, tmp_path, out=loop)
    assert "a dangling symlink" in _exit_2(capsys, tmp_path, out=dangling)
    with pytest.raises(SystemExit) as stop:
        main([*cli_args(Path(""))[:-4], "--out", "", "--device", "cpu"])
    assert stop.value.code == 2 and "--out: must not be empty" in capsys.readouterr().err
    for out, problem in [(tmp_path, "is a folder; give a file name"), (Path("/dev/null"), "is not a regular file")]:
        for command in (["export"], ["sweep", "navigation", "--levels", "0.95"], ["benchmark-inference"]):
            code = main([*command, "--run", str(finished_run), "--out", str(out)])
            err = capsys.readouterr().err
            assert code == 2 and f"--out {out}: {problem}" in err, err
    assert Path("/dev/null").is_char_device()


def test_a_full_disk_is_one_line_naming_the_file(capsys, tmp_path, monkeypatch, finished_run):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    out = tmp_path / "m.pt"
    code = main(["export", "--run", str(finished_run), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err == f"geosparse: error: cannot write {out}: No space left on device\n"
    assert not list(tmp_path.iterdir())  # no temp file left
    run = tmp_path / "run"
    code = main(cli_args(run))
    err = capsys.readouterr().err
    assert code == 1 and f"geosparse: error: cannot write {run}" in err and "No space left on device" in err
    assert not list(run.glob(".*.tmp")) and not (run / "metrics.json").exists()


# 17. Pipeline config: what the file names and the jobs can hold -------------------------


@pytest.mark.parametrize(
    "override,expected",
    [
        ({"targets": [0.9, 0.901]}, ["tasks.navigation.targets", "0.9 and 0.901 both round to 90 %"]),
        ({"targets": [0.00001]}, ["tasks.navigation.targets", "1e-05 would name its run folders", "decimal"]),
        (
            {"seeds": [1.0], "structure": {"max_dim": 1}},
            ["tasks.navigation.seeds.0", "is not of type 'integer'", "tasks.navigation.structure.max_dim", "minimum"],
        ),
    ],
    ids=["targets-same-percent", "tiny-target", "float-seed-and-max-dim"],
)
def test_pipeline_config_values_the_file_names_cannot_hold_fail_at_once(tmp_path, override, expected):
    import yaml

    grid = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["tasks"]["navigation"]
    structure = {**grid["structure"], **override.pop("structure", {})}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"navigation": {**override, "structure": structure}}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--nolock", "-n", "--configfile", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "rule train:" not in message
    for text in expected:
        assert text in message, message
