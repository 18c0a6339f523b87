"""Reading the project's JSON files with errors that name the file (no torch import,
so the workflow's table scripts can use it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geosparse.config import InputError


def read_json(path: str | Path) -> Any:
    """Parse a JSON file the project wrote (metrics.json, sweep.json, ...); a missing or
    malformed file raises ValueError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not valid JSON ({error}); delete it and rerun the step that writes it") from None
