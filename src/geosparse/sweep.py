"""Post-hoc pruning sweep: prune a finished run further and evaluate each level.

``geosparse sweep navigation --run DIR --levels 0.5 0.9 0.98 --out FILE.json`` loads
the finished run (``geosparse.runs.load_finished``: weights, masks, task state), then
for every level: restores the run's weights and masks, prunes by global magnitude
over the run's pruned tensors (a ``MagnitudePruner`` with scope ``global``, whatever
scope the run trained with; cumulative, so the run's own pruned weights stay pruned)
and evaluates with the run's own evaluation rule (``Run.evaluate``). Levels at
or below the run's sparsity cannot un-prune anything: they are evaluated as is and
marked ``evaluated_as_is``. A run that did not complete (diverged) has no model: its
result has its ``status`` and no levels. The run directory is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from geosparse.config import InputError
from geosparse.files import read_json
from geosparse.pruning import MagnitudePruner
from geosparse.runio import write_json
from geosparse.runs import load_finished


def sweep_navigation(run_dir: Path, levels: Sequence[float]) -> dict:
    """Evaluate the run in ``run_dir`` pruned to each of ``levels`` (fractions in [0, 1))."""
    if not levels:
        raise InputError("at least one sweep level is needed")
    for level in levels:
        if not 0 <= level < 1:
            raise InputError(f"sweep level must be in [0, 1), got {level!r}")
    metrics = read_json(run_dir / "metrics.json")
    if metrics["status"] != "completed":
        return {
            "run": str(run_dir),
            "seed": metrics["seed"],
            "status": metrics["status"],
            "run_sparsity": None,
            "eval_rule": None,
            "levels": [],
        }
    finished = load_finished(run_dir, task="navigation")
    run = finished.run
    saved = {"model": copy.deepcopy(run.model.state_dict()), "masks": copy.deepcopy(run.pruner.state_dict())}
    pruned = sum(int((~mask).sum()) for mask in saved["masks"].values())
    total = sum(mask.numel() for mask in saved["masks"].values())
    pruner = MagnitudePruner(run.pruner.params, scope="global")
    rows, eval_rule = [], None
    for level in sorted(set(levels)):
        run.model.load_state_dict(saved["model"])
        pruner.load_state_dict(saved["masks"])
        as_is = round(level * total) <= pruned
        if not as_is:
            pruner.prune_to(level)
        result = run.evaluate()
        eval_rule = result["eval_rule"]
        rows.append(
            {
                "level": level,
                "evaluated_as_is": as_is,
                "error_cm": result["error_cm"],
                "loss": result["loss"],
                "sparsity": result["sparsity"],
                "W_hh_sparsity": result["W_hh_sparsity"],
            }
        )
    return {
        "run": str(run_dir),
        "seed": metrics["seed"],
        "status": metrics["status"],
        "run_sparsity": pruned / total,
        "scope": "global",
        "eval_rule": eval_rule,
        "levels": rows,
    }


def write_sweep(run_dir: Path, levels: Sequence[float], out: Path) -> dict:
    """``sweep_navigation`` and write the result to ``out`` (JSON, atomically)."""
    result = sweep_navigation(run_dir, levels)
    write_json(out, result)
    return result
