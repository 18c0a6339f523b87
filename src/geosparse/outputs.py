"""Output paths checked before any work (no torch import): ``--out`` of every command.

A run folder (``train --out``) and an output file (sweep, export, benchmark-inference)
must not be a symlink loop or a dangling symlink (the CLI also refuses an empty path); a folder must be a folder
and a file a regular file (not a folder, a character device such as /dev/null, a FIFO);
the folder that will hold it must be writable. A symlink to a file is followed: the
file it points to is replaced, not the link. Nothing is created here.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from geosparse.config import InputError

OUT_OPTION = "--out"


def _resolved(path: Path, option: str) -> Path:
    """``path`` with its symlinks resolved; a loop or a dangling link is refused."""
    try:
        resolved = path.resolve()
        os.stat(path)  # ELOOP: a loop (Python >= 3.13 resolves it silently)
    except RuntimeError as error:  # a symlink loop (Python < 3.13)
        raise InputError(f"{option} {path}: cannot resolve it ({error})") from None
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise InputError(f"{option} {path}: cannot resolve it ({error.strerror})") from None
        if path.is_symlink():
            raise InputError(f"{option} {path}: a dangling symlink (to {os.readlink(path)})") from None
    return resolved


def _check_parent(path: Path, option: str, what: str) -> None:
    """The nearest existing folder above ``path`` must be a writable folder."""
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {path}: cannot create the {what} ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: {existing} is not writable")


def check_out_dir(out: Path, option: str = OUT_OPTION) -> Path:
    """A run folder: an existing writable folder, or creatable as one. Returns it resolved."""
    resolved = _resolved(out, option)
    if resolved.exists():
        if not resolved.is_dir():
            raise InputError(f"{option} {out}: exists and is not a folder")
        if not os.access(resolved, os.W_OK | os.X_OK):
            raise InputError(f"{option} {out}: {resolved} is not writable")
        return resolved
    _check_parent(resolved, option, "run folder")
    return resolved


def check_out_file(out: Path, option: str = OUT_OPTION) -> Path:
    """An output file: a regular file (replaced) or a new one in a writable folder.
    Returns it resolved (a symlink's target is what gets written)."""
    resolved = _resolved(out, option)
    if resolved.exists():
        mode = resolved.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{option} {out}: is a folder; give a file name")
        if not stat.S_ISREG(mode):
            raise InputError(f"{option} {out}: is not a regular file (a device, FIFO or socket); give a file name")
    _check_parent(resolved, option, "file")
    return resolved


class WriteError(OSError):
    """Writing an output failed (disk full, quota, permissions, I/O error): the message
    names the file and the cause, and the CLI prints it alone (exit 1)."""


def write_error(path: Path, error: BaseException) -> WriteError | None:
    """A WriteError for ``path`` from the OSError that is ``error`` or in its chain
    (torch.save reports a full disk as a RuntimeError caused by one), else None."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    return WriteError(cause.errno, f"cannot write {path}: {cause.strerror or cause}")
