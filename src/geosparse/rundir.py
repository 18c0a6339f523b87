"""A run folder has one writer: a lock held while a run trains, and the rule for what an
earlier run left in the folder.

The lock is ``fcntl.flock`` on ``<run>/.geosparse.lock`` (released by the kernel when the
process dies, also on ``kill -9``; on NFS, Linux maps it to a POSIX lock). It holds the
holder's pid and host, which a second writer names when it is refused. The file is
deleted when the run ends, so a finished run folder holds only the run's files.

A folder without ``checkpoint.pt`` but with a finished run's files (metrics.json,
``model_<phase>.pt``) starts over only if metrics.json is missing (the workflow deletes
it before it reruns a job) or describes the same config and seed; the old files are
then deleted first, so nothing of the old run survives beside the new one. A finished
run of another config or seed is refused.

A writer stopped by SIGINT or SIGTERM checkpoints and raises ``Interrupted``
(``geosparse.training``); the CLI exits 128 + the signal number.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
from pathlib import Path
from types import TracebackType

from geosparse.config import InputError
from geosparse.files import read_json

LOCK_NAME = ".geosparse.lock"
"""The lock file inside a run folder (deleted when the run ends)."""


class RunFolderError(InputError):
    """The run folder is in use by another writer, or holds another run."""


def start_over_hint(out: Path) -> str:
    return f"to start over, delete the folder (rm -r {out}) or choose another --out"


class RunLock:
    """``with RunLock(out):`` holds ``out``'s lock, or raises RunFolderError at once naming
    the holder (pid and host). ``out`` is created if missing."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise RunFolderError(
                    f"{self.path.parent} is being written by {holder} (lock {self.path}); "
                    "wait for it to end, or use another --out"
                ) from None
            try:  # the holder before us may have deleted the file after we opened it
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # before unlocking: the next writer makes a new file
            os.close(self.fd)
            self.fd = None


def finished_run_files(out: Path) -> list[Path]:
    """What a finished (or diverged) run leaves in ``out``: metrics.json and its models."""
    return [p for p in [out / "metrics.json", *sorted(out.glob("model_*.pt"))] if p.is_file()]


def clear_finished_run(out: Path, config: dict, seed: int) -> list[Path]:
    """Before a fresh start (no checkpoint): delete the files of the earlier run in ``out``
    if it was the same run (config and seed) or its metrics.json is gone; refuse another
    run's folder (RunFolderError). Returns the deleted paths."""
    old = finished_run_files(out)
    metrics_path = out / "metrics.json"
    if metrics_path in old:
        metrics = read_json(metrics_path)
        same = isinstance(metrics, dict) and metrics.get("config") == config and metrics.get("seed") == seed
        if not same:
            raise RunFolderError(
                f"{out} holds a finished run of another config or seed ({metrics_path}); {start_over_hint(out)}"
            )
    for path in old:
        path.unlink()
    return old


class Interrupted(Exception):
    """Training stopped on a signal after checkpointing (``signum``); the message, also
    logged, says where and how to resume."""

    def __init__(self, signum: int, where: str, checkpoint: Path):
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at {where}: checkpoint saved to {checkpoint}; rerun the same command to resume"
        )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that checkpoint and stop a run (Ctrl-C; SLURM's at a job's time limit)."""
