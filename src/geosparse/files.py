"""Reading the project's JSON files with errors that name the file (no torch import,
so the workflow's table scripts can use it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geosparse.config import InputError, read_text_file

MAX_JSON_BYTES = 256 << 20
"""Largest JSON file read (256 MiB; a metrics.json is kilobytes)."""


def read_json(path: str | Path) -> Any:
    """Parse a JSON file the project wrote (metrics.json, sweep.json, ...); a missing,
    unreadable, non-UTF-8 or malformed file raises ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} is missing")
    text = read_text_file(path, "JSON file", MAX_JSON_BYTES)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InputError(f"{path} is not valid JSON ({error}); delete it and rerun the step that writes it") from None
