"""Task-independent training driver: pruning schedule, phases, checkpoints, metrics.

A run has the phase ``sparse`` (train while pruning on the schedule, then optional
fine-tuning epochs at the target) and optionally ``lottery`` (re-initialise at random,
keep the final masks, train for the same number of epochs). After each epoch the full
state (model, optimizer, masks, data-stream RNG, history) is checkpointed atomically;
a run started again with the same arguments resumes from there and ends with the same
metrics as an uninterrupted run. SIGINT (Ctrl-C) or SIGTERM (SLURM at a job's time limit)
checkpoints at once, also mid-epoch (the steps done, the partial epoch sums, the data
stream and RNG states), and stops with ``Interrupted`` (the CLI exits 128 + the signal
number: 130, 143); rerunning the command resumes at that step, to the same metrics. Only
one process trains into a run folder at a time (``geosparse.rundir``). An epoch whose
mean training loss is NaN/inf or above ``DIVERGENCE_FACTOR`` x the task's chance loss
stops the run with ``status: "diverged"`` and the reason (exit code 0: a grid must finish, and such runs are counted).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.profiler import record_function
from tqdm import tqdm

from geosparse.config import InputError
from geosparse.precision import autocast as precision_autocast
from geosparse.precision import configure as configure_precision
from geosparse.precision import describe as describe_precision
from geosparse.precision import recurrence_dtype, restore_recurrence_dtype, slow_cpu_warning
from geosparse.pruning import lottery_ticket_reinit, scheduled_fraction
from geosparse.rundir import STOP_SIGNALS, Interrupted, RunLock, clear_finished_run, start_over_hint
from geosparse.runfiles import (
    METRICS_SCHEMA_VERSION,
    RunFileError,
    check_mapping,
    check_resume_state,
    check_tensors,
)
from geosparse.runio import (
    derive_seed,
    describe_device,
    describe_run_environment,
    finite_or_none,
    generator_state,
    load_checkpoint,
    machine,
    remove_stale_temps,
    save_checkpoint,
    setup_logging,
    utc_now,
    versions,
    write_json,
)
from geosparse.runs import Run


class CheckpointMismatchError(InputError):
    """The run directory holds a checkpoint of another config or seed."""


TRAIN_STEP_LABEL = "geosparse:train_step (batch, forward, loss)"
"""Profiler range of ``task.train_step()``; it encloses the task's own ``geosparse:*`` ranges."""


def optimization_step(
    run: Run, optimizer: torch.optim.Optimizer, grad_clip: float | None, precision: str = "fp32"
) -> dict[str, torch.Tensor]:
    """One training step of ``run``: forward (under ``precision``'s autocast), backward,
    clip, optimizer step, masks, regularizer projection.

    Returns ``run.task.train_step()``'s stats, ``loss`` in float32. The phases are labelled
    ``geosparse:*`` for ``torch.profiler`` (``benchmarks/train_step.py --profile``); the
    labels cost ~1 us when no profiler runs.
    """
    with record_function(TRAIN_STEP_LABEL), precision_autocast(precision, run.device):
        stats = run.task.train_step(run.model)
    stats["loss"] = stats["loss"].float()
    with record_function("geosparse:backward"):
        optimizer.zero_grad(set_to_none=True)
        stats["loss"].backward()
    with record_function("geosparse:optimizer (clip, step)"):
        if grad_clip:
            nn.utils.clip_grad_norm_(run.trainable, grad_clip)
        optimizer.step()
    with record_function("geosparse:masks"):
        run.pruner.apply_()
        for regularizer in run.task.regularizers:
            regularizer.project_()
    return stats


class Trainer:
    """Trains a ``Run`` under its config's training/pruning sections, writing ``out/``.

    The driver owns the schedule: pruning to the epoch's fraction, the optimizer, the
    learning-rate plateau policy (``Task.lr_plateau_key``), the global RNG stream
    (seeded per phase, checkpointed: dropout replays on resume), divergence, and the
    outputs: ``metrics.json`` (results + full config + provenance), ``checkpoint.pt``
    (resumable state), ``model_<phase>.pt`` (the finished phase, self-describing:
    ``Run.final_state``), and ``train.log``.
    """

    def __init__(self, run: Run, out: Path, requested_device: str | None = None):
        self.run, self.out, self.requested_device = run, out, requested_device
        self.task = run.task
        self.config, self.seed, self.device = run.config, run.seed, run.device
        self.log = setup_logging(out / "train.log")
        training, pruning = self.config["training"], self.config["pruning"]
        self.epochs = training["epochs"]
        self.total_epochs = training["epochs"] + training["finetune_epochs"]
        self.steps = training.get("steps_per_epoch") or self.task.steps_per_epoch
        self.grad_clip = training.get("grad_clip")
        self.precision = training["precision"]
        self.target, self.schedule = pruning["target"], pruning["schedule"]
        self.phases = ["sparse"] + (["lottery"] if self.config["lottery_ticket"]["enabled"] else [])
        self.stop: int | None = None
        """The stop signal received (``_stop_signals``), or None."""

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _fraction(self, epoch: int) -> float:
        return scheduled_fraction(min(epoch, self.epochs - 1), self.epochs, self.target, self.schedule)

    def train(self) -> dict:
        """Train every phase (resuming from ``checkpoint.pt``), write metrics.json, return it.
        Holds the run folder's lock; a stop signal checkpoints and raises ``Interrupted``."""
        with RunLock(self.out), self._stop_signals():
            return self._train()

    @contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """While training, ``STOP_SIGNALS`` set ``self.stop`` (checked after every step)
        instead of killing the process; the previous handlers come back afterwards."""
        self.stop = None
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return

        def handler(signum: int, frame: object) -> None:
            self.stop = signum

        previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def _stop_if_signalled(self, state: dict, optimizer: torch.optim.Optimizer | None) -> None:
        if self.stop is not None:
            self._checkpoint(state, optimizer)
            stopped = Interrupted(self.stop, _position(state), self.checkpoint_path)
            self.log.warning("%s", stopped)  # the one line (train.log and stderr)
            raise stopped

    def _train(self) -> dict:
        self.log.info("%s", describe_run_environment(self.device, self.precision, self.requested_device))
        configure_precision(self.precision)
        if warning := slow_cpu_warning(self.precision, self.device):
            self.log.warning("%s", warning)
        for stale in remove_stale_temps(self.out):  # left by a process killed mid-write
            self.log.info("removed stale temporary file %s", stale)
        state, optimizer_state = self._resume_state()
        optimizer = None
        for phase in self.phases[self.phases.index(state["phase"]) :]:
            if phase != state["phase"]:  # entering a new phase (not resuming inside it)
                state.update(phase=phase, epoch=0, best_plateau=None)
                if phase == "lottery":
                    lottery_ticket_reinit(self.run.model, self.run.pruner, derive_seed(self.seed, "lottery-init"))
                self._start_phase(phase)
                optimizer_state = None
            optimizer = self.run.new_optimizer()
            if optimizer_state is not None:
                optimizer.load_state_dict(optimizer_state)
            while state["epoch"] < self.total_epochs and state["status"] == "running":
                self._train_epoch(state, optimizer)
                self._checkpoint(state, optimizer)
                self._stop_if_signalled(state, optimizer)
            if state["status"] == "diverged":
                break
            if phase not in state["results"]:
                started = time.perf_counter()
                state["results"][phase] = self.run.evaluate()
                state["wall_time_s"] += time.perf_counter() - started
                self.log.info("%s result: %s", phase, _short(state["results"][phase]))
                save_checkpoint(self.out / f"model_{phase}.pt", self.run.final_state(phase))
                self._checkpoint(state, optimizer)
                self._stop_if_signalled(state, optimizer)
        if state["status"] == "running":
            state["status"] = "completed"
        metrics = self._metrics(state)
        write_json(self.out / "metrics.json", metrics)
        self._checkpoint(state, optimizer)
        self.log.info(
            "done: status=%s wall=%.1fs -> %s", state["status"], state["wall_time_s"], self.out / "metrics.json"
        )
        return metrics

    def _start_phase(self, phase: str) -> None:
        """The task's data stream and the global RNG stream (dropout) of ``phase``."""
        torch.manual_seed(derive_seed(self.seed, f"train-{phase}"))
        self.task.start_phase(phase)

    def _train_epoch(self, state: dict, optimizer: torch.optim.Optimizer) -> None:
        """One epoch, or the rest of one that a signal interrupted (``state["partial"]``:
        the steps done and the stats' running sums; the checkpoint holds the rest)."""
        phase, epoch = state["phase"], state["epoch"]
        started = time.perf_counter()
        if state["partial"] is None:  # a new epoch (a resumed one is already pruned)
            if phase == "sparse":
                self.run.pruner.prune_to(self._fraction(epoch))
            state["partial"] = {"step": 0, "sums": {}}
        partial = state["partial"]
        sums: dict[str, torch.Tensor] = partial["sums"]
        bar = tqdm(
            range(partial["step"], self.steps),
            initial=partial["step"],
            total=self.steps,
            desc=f"{phase} epoch {epoch + 1}/{self.total_epochs}",
            leave=False,
            disable=None,
        )
        self.run.model.train()
        for step in bar:
            stats = optimization_step(self.run, optimizer, self.grad_clip, self.precision)
            for key, value in stats.items():
                value = value.detach()
                sums[key] = sums[key] + value if key in sums else value
            partial["step"] = step + 1
            if self.stop is not None and step + 1 < self.steps:
                state["wall_time_s"] += time.perf_counter() - started
                bar.close()
                self._stop_if_signalled(state, optimizer)
        state["partial"] = None
        means = {key: float(value) / self.steps for key, value in sums.items()}
        record = {
            "phase": phase,
            "epoch": epoch,
            "pruned_fraction_target": self._fraction(epoch) if phase == "sparse" else None,
            **{k: finite_or_none(v) for k, v in means.items()},
        }
        report = self.run.pruner.report()
        record["sparsity"] = report["global"]["sparsity"]
        record.update({f"sparsity_{k}": v["sparsity"] for k, v in report["tensors"].items()})
        reason = divergence(means["loss"], means[self.task.task_loss_key], self.task.chance_loss)
        if reason is not None:
            state["status"] = "diverged"
            state["diverged"] = {"phase": phase, "epoch": epoch, "reason": reason}
            self.log.warning("%s epoch %d: %s, stopping (diverged)", phase, epoch, reason)
        else:
            record.update(self.task.validate(self.run.model))
            if self.task.lr_plateau_key is not None:
                self._plateau(state, record, optimizer)
        state["wall_time_s"] += time.perf_counter() - started
        state["history"].append(record)
        state["epoch"] += 1
        self.log.info("%s | %s", self._progress(state), _short(record))

    def _progress(self, state: dict) -> str:
        """``<phase> epoch k/N, elapsed H:MM:SS, ETA H:MM:SS`` after an epoch: the ETA is the
        run's remaining epochs (every phase) at its mean time per epoch so far."""
        done = self.phases.index(state["phase"]) * self.total_epochs + state["epoch"]
        remaining = len(self.phases) * self.total_epochs - done
        elapsed = state["wall_time_s"]
        return (
            f"{state['phase']} epoch {state['epoch']}/{self.total_epochs}, elapsed {_clock(elapsed)}, "
            f"ETA {_clock(elapsed / done * remaining)}"
        )

    def _plateau(self, state: dict, record: dict, optimizer: torch.optim.Optimizer) -> None:
        """Divide the lr by ``training.lr_decay`` when ``record[Task.lr_plateau_key]`` did
        not improve on the phase's best (None counts as infinite); record the lr."""
        value = record[self.task.lr_plateau_key]
        value = float("inf") if value is None else value
        if state["best_plateau"] is None or value < state["best_plateau"]:
            state["best_plateau"] = value
        else:
            for group in optimizer.param_groups:
                group["lr"] /= self.config["training"]["lr_decay"]
        record["lr"] = optimizer.param_groups[0]["lr"]

    def _checkpoint(self, state: dict, optimizer: torch.optim.Optimizer | None) -> None:
        save_checkpoint(
            self.checkpoint_path,
            {  # what a finished phase's file holds, plus what resuming inside a phase needs
                **self.run.final_state(state["phase"]),
                **state,
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "torch_rng": _rng_state(self.device),
                "recurrence_dtype": recurrence_dtype(self.run.model),
            },
        )

    def _resume_state(self) -> tuple[dict, dict | None]:
        """The run state and optimizer state to continue from (fresh if no checkpoint)."""
        state = {
            "phase": self.phases[0],
            "epoch": 0,
            "status": "running",
            "diverged": None,
            "history": [],
            "results": {},
            "wall_time_s": 0.0,
            "started_at": utc_now(),
            "best_plateau": None,
            "partial": None,
        }
        if not self.checkpoint_path.exists():
            for old in clear_finished_run(self.out, self.config, self.seed):
                self.log.info("removed %s of the earlier run of this config and seed", old)
            self._start_phase(self.phases[0])
            return state, None
        path = self.checkpoint_path
        saved = check_mapping(load_checkpoint(path), path)  # on the CPU: state_dicts copy it over
        if saved.get("config") != self.config or saved.get("seed") != self.seed:
            raise CheckpointMismatchError(
                f"{self.checkpoint_path} belongs to a run with another config or seed; {start_over_hint(self.out)}"
            )
        saved.setdefault("partial", None)  # checkpoints from before mid-epoch stops
        saved.setdefault("started_at", None)  # checkpoints from before start times
        missing = sorted(set(state) - set(saved))
        if missing:
            raise CheckpointMismatchError(
                f"{self.checkpoint_path} was written by another geosparse version (no {missing}); "
                "delete it to restart the run"
            )
        check_resume_state(saved, path, self.phases, self.total_epochs, self.steps)
        check_tensors(self.run.model.state_dict(), saved["model"], path, "model")
        check_tensors(self.run.pruner.masks, saved["masks"], path, "masks")
        self.run.model.load_state_dict(saved["model"])
        self.run.pruner.load_state_dict(saved["masks"])
        self.task.start_phase(saved["phase"])
        try:
            self.task.load_state_dict(saved["task_state"])
            _set_rng_state(saved["torch_rng"], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise RunFileError(
                f"{path}: key 'task_state' or 'torch_rng': not this run's state "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "delete it to restart the run"
            ) from None
        restore_recurrence_dtype(self.run.model, saved.get("recurrence_dtype"))
        state = {key: saved[key] for key in state}
        self.log.info("resuming %s (%s)", _position(state), self.checkpoint_path)
        return state, saved["optimizer"]

    def _metrics(self, state: dict) -> dict:
        data = self.task.data_description
        return {
            "schema_version": METRICS_SCHEMA_VERSION,
            "task": self.config["task"],
            **({"data": data} if data is not None else {}),
            "status": state["status"],
            "diverged": state["diverged"],
            "seed": self.seed,
            "config": self.config,
            "versions": versions(),
            "device": describe_device(self.device),
            "machine": machine(),
            "precision": {
                **describe_precision(self.precision, self.device),
                "recurrence_dtype": recurrence_dtype(self.run.model),
            },
            "wall_time_s": state["wall_time_s"],
            "started_at": state["started_at"],
            "finished_at": utc_now(),
            "history": state["history"],
            "final": state["results"].get("sparse"),
            "lottery_ticket": state["results"].get("lottery"),
        }


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global RNG states training draws from (CPU, and ``device``'s if CUDA)."""
    state = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.random.set_rng_state(generator_state(state["cpu"]))
    if "cuda" in state:
        torch.cuda.set_rng_state(generator_state(state["cuda"]), device)


DIVERGENCE_FACTOR = 100.0
"""A run has diverged when an epoch's mean training loss is NaN/inf or its mean task loss
(``Task.task_loss_key``, without the penalty) is above this many times the task's
chance loss (``Task.chance_loss``: the loss of a constant guess; navigation ln Np,
language ln V, adding 1/6)."""


def divergence(loss: float, task_loss: float, chance_loss: float) -> str | None:
    """Why an epoch counts as diverged, or None: its mean training ``loss`` (task loss +
    penalty) is NaN/inf, or its mean ``task_loss`` (the data term alone, so a strong
    penalty does not count) is above ``DIVERGENCE_FACTOR`` x ``chance_loss``."""
    if not math.isfinite(loss):
        return f"loss is {loss}"
    if task_loss > DIVERGENCE_FACTOR * chance_loss:
        return f"task loss {task_loss:.4g} > {DIVERGENCE_FACTOR:g} x the chance loss {chance_loss:.4g}"
    return None


def _position(state: dict) -> str:
    """Where a run stands, for the log: phase, epoch and, inside an epoch, the step."""
    step = f", step {state['partial']['step']}" if state["partial"] else ""
    return f"{state['phase']} at epoch {state['epoch']}{step}"


def _clock(seconds: float) -> str:
    """``H:MM:SS`` of a duration in seconds."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _short(record: dict) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if not isinstance(v, dict)
    )
