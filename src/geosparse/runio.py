"""Run bookkeeping: atomic outputs, safe checkpoints, seeds, devices, versions."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import torch

import geosparse
from geosparse.config import SNAKEMAKE_ENV, InputError
from geosparse.outputs import write_error

TEMP_SUFFIX = ".tmp"
"""Atomic writes go to ``.<name>.<random>.tmp`` beside the target, then are renamed."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically: ``write(fh)`` fills a temp file beside it, which is
    fsynced and renamed over ``path`` (readers never see a partial file), with the
    permissions a plain ``open`` would give (mkstemp's 0600 honours no umask: colleagues
    could not read results). A failed write (disk full, ...) leaves ``path`` as it was
    and raises ``WriteError`` naming ``path`` and the cause."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        failed = write_error(path, error) if isinstance(error, Exception) else None
        if failed is not None:
            raise failed from error
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temp file + rename); NaN is not allowed."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write(Path(path), lambda fh: fh.write(text.encode()))


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor in its dicts, lists and tuples on the CPU; containers
    without a tensor elsewhere are returned as they are (a CPU run's files stay byte-identical)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        moved = {key: to_cpu(item) for key, item in value.items()}
        if all(moved[key] is item for key, item in value.items()):
            return value
        copy = type(value)(moved)
        if hasattr(value, "__dict__"):  # an OrderedDict state_dict's _metadata
            copy.__dict__.update(value.__dict__)
        return copy
    if isinstance(value, (list, tuple)):
        moved = [to_cpu(item) for item in value]
        return value if all(a is b for a, b in zip(moved, value, strict=True)) else type(value)(moved)
    return value


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` atomically, every tensor moved to the CPU first: a file written on a
    GPU loads on any machine and holds nothing of the device it was written on."""
    state = to_cpu(state)
    atomic_write(Path(path), lambda fh: torch.save(state, fh))


def generator_state(state: torch.Tensor) -> torch.Tensor:
    """A saved ``torch.Generator`` state as ``set_state`` takes it: a CPU byte tensor.
    Every random stream of a run is a CPU generator (the same numbers on every device);
    its state may come back on another device from a file loaded with another
    ``map_location``."""
    return state.to(device="cpu", dtype=torch.uint8)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temp files of atomic writes that a killed process left in ``folder``
    (``.checkpoint.pt.<random>.tmp`` and the like); a run folder has one writer, so at
    its start every such file is stale. Returns the deleted paths."""
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load`` onto the CPU, with ``weights_only=True`` (no arbitrary code from the
    file). Callers copy what they need onto their device (``load_state_dict`` does; an
    optimizer moves its own state, keeping step counters on the CPU: no host sync per
    step on a GPU). A file
    that is not a valid checkpoint (truncated, random bytes, empty, or holding objects
    other than tensors and plain containers) raises ValueError naming the file; torch's
    own message is not passed on, since it suggests the unsafe ``weights_only=False``."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        raise InputError(
            f"{path} is not a valid geosparse checkpoint ({type(error).__name__}: truncated, "
            "corrupt, or not written by geosparse; it is never loaded as arbitrary pickled "
            f"objects). Delete it to start over (a run folder's checkpoint.pt: the run then "
            "restarts from its first epoch)."
        ) from None


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN/inf: a non-finite number becomes None (null)."""
    return value if math.isfinite(value) else None


def derive_seed(seed: int, purpose: str) -> int:
    """A stable 63-bit seed for one random stream (``purpose``) of run ``seed``."""
    digest = hashlib.sha256(f"geosparse:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def torch_build() -> str:
    """``torch <version> (CUDA <version> | CPU-only build)``: what a run's torch can use."""
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build, no CUDA"
    return f"torch {torch.__version__} ({cuda})"


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else cpu; otherwise ``torch.device(name)``. A
    ``cuda`` device that this torch cannot use is an InputError naming the torch build
    (exit 2 at once: a GPU job must not train on a CPU into its time limit)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: allowed values: auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        why = (
            "install a CUDA build of torch"
            if torch.version.cuda is None
            else f"no GPU visible (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r}, driver?)"
        )
        raise InputError(f"--device {name}: {torch_build()} cannot use CUDA here: {why}")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def describe_run_environment(device: torch.device, precision: str, requested: str | None = None) -> str:
    """One line for the top of a run's log: the device (GPU model), how it was chosen
    when ``requested`` is ``auto``, the precision, torch and CUDA versions and threads."""
    chosen = ""
    if requested == "auto":
        chosen = f" (--device auto: CUDA {'available' if device.type == 'cuda' else 'not available'})"
    return (
        f"device {describe_device(device)}{chosen}, precision {precision}, {torch_build()}, "
        f"{torch.get_num_threads()} threads"
    )


def _cpu_model() -> str:
    """``model name (family F, model M)`` from /proc/cpuinfo (names like "Intel Xeon
    Processor" hide the generation; family/model tell it), else what platform knows."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    except (OSError, KeyError):
        return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What decides a CPU run's floating-point results besides config and seed: the CPU,
    the kernel path torch dispatches to, threads and the BLAS / oneDNN settings. Runs on
    different CPUs can differ in the last bits, which training amplifies (README)."""
    return {
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR", "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE")
            if k in os.environ
        },
    }


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-12-03T13:41:01+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"none"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def versions(*extra: str) -> dict[str, str]:
    """Versions behind a result: geosparse, torch (with its build tag), numpy and the
    ``extra`` packages (``"none"`` when not installed), Python, CUDA, and the Snakemake
    that ran the job (``"none"`` outside the workflow)."""
    return {
        "geosparse": geosparse.__version__,
        "torch": torch.__version__,
        **{name: package_version(name) for name in ("numpy", *extra)},
        "python": sys.version.split()[0],
        "cuda": torch.version.cuda or "none",
        "snakemake": os.environ.get(SNAKEMAKE_ENV, "none"),
    }


def setup_logging(log_file: Path) -> logging.Logger:
    """Logger ``geosparse`` writing to ``log_file`` (appending) and to stderr."""
    logger = logging.getLogger("geosparse")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.FileHandler(log_file), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.propagate = False
    return logger
