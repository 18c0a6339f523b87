"""Give a GPU job the least busy GPU of its machine, then run it.

``python -m geosparse.gpu_slots COMMAND ...`` picks one of the machine's GPUs, sets
``CUDA_VISIBLE_DEVICES`` to it and replaces itself with ``COMMAND`` (exec), holding a lock
file of that GPU until the command ends. The GPU chosen is the one with the fewest such
locks held (ties: the first), so concurrent jobs spread over the GPUs, and K jobs per GPU
are the balanced result of letting ``N x K`` GPU jobs run at once (Snakemake's ``gpu``
resource: profiles/workstation). The workflow starts every GPU training job this way.

The GPUs: ``CUDA_VISIBLE_DEVICES`` when set (a batch system's or the user's choice,
IDs kept as given), else one per entry of ``/proc/driver/nvidia/gpus``; with none, the
command runs unchanged. Locks are ``flock``s on files in a folder of the machine's temp
directory (``GEOSPARSE_GPU_SLOTS`` overrides it): the kernel drops them when a job ends,
however it ends, and jobs of several workflows on one machine share them.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

LOCK_DIR_ENV = "GEOSPARSE_GPU_SLOTS"
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPU IDs a job may be given (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [gpu.strip() for gpu in environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    if NVIDIA_GPUS.is_dir():
        return [str(i) for i in range(len(list(NVIDIA_GPUS.iterdir())))]
    return []


def lock_dir(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    default = Path(tempfile.gettempdir()) / f"geosparse-gpu-slots-{getpass.getuser()}"
    return Path(environ.get(LOCK_DIR_ENV, default))


def _name(gpu: str) -> str:
    """``gpu`` as part of a file name (UUID and MIG IDs hold ``/`` and ``.``)."""
    return re.sub(r"[^A-Za-z0-9-]", "_", gpu)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive ``flock`` on ``path``, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire(gpus: Sequence[str], folder: Path) -> tuple[str, int]:
    """The least busy of ``gpus`` and an fd holding one of its slot locks (keep it open
    for as long as the job runs). The choice is made under a folder-wide lock, so jobs
    starting at the same moment see each other's slots."""
    folder.mkdir(parents=True, exist_ok=True)
    guard = os.open(folder / "choose.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        held: dict[str, int] = {}
        free: dict[str, list[Path]] = {}
        for gpu in gpus:
            slots = sorted(folder.glob(f"gpu{_name(gpu)}.*.lock"), key=lambda p: int(p.name.split(".")[1]))
            held[gpu], free[gpu] = 0, []
            for slot in slots:
                fd = _try_lock(slot)
                if fd is None:
                    held[gpu] += 1
                else:
                    os.close(fd)  # free: closing the fd drops the test lock
                    free[gpu].append(slot)
        gpu = min(gpus, key=lambda g: held[g])  # first of the least busy
        slot = free[gpu][0] if free[gpu] else folder / f"gpu{_name(gpu)}.{held[gpu]}.lock"
        fd = _try_lock(slot)
        if fd is None:  # cannot happen under the guard; refuse rather than share silently
            raise RuntimeError(f"GPU slot {slot} was taken while the choice was locked")
        return gpu, fd
    finally:
        os.close(guard)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``argv`` (a command) on the least busy GPU; never returns (exec)."""
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        sys.exit("usage: python -m geosparse.gpu_slots COMMAND [ARG ...]")
    environ = dict(os.environ)
    gpus = visible_gpus(environ)
    if gpus:
        gpu, fd = acquire(gpus, lock_dir(environ))
        os.set_inheritable(fd, True)  # the command holds the lock until it exits
        environ["CUDA_VISIBLE_DEVICES"] = gpu
        print(f"geosparse.gpu_slots: CUDA_VISIBLE_DEVICES={gpu} (of {','.join(gpus)})", file=sys.stderr)
    os.execvpe(command[0], command, environ)


if __name__ == "__main__":
    main()
