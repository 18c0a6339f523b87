"""Run bookkeeping: atomic outputs, safe checkpoints, seeds, devices, versions."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import geosparse


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temp file + rename); NaN is not allowed."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    _atomic(Path(path), lambda fh: fh.write(text.encode()))


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` atomically."""
    _atomic(Path(path), lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """``torch.load`` with ``weights_only=True`` (no arbitrary code from the file)."""
    return torch.load(path, map_location=device, weights_only=True)


def derive_seed(seed: int, purpose: str) -> int:
    """A stable 63-bit seed for one random stream (``purpose``) of run ``seed``."""
    digest = hashlib.sha256(f"geosparse:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else cpu; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    return {
        "geosparse": geosparse.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "cuda": torch.version.cuda or "none",
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
