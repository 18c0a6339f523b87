"""Aggregate the runs' sweep.json files into one tidy CSV (one row per run and level).

Columns: task, run_id, regularizer, label, target, seed, status, run_sparsity, level,
evaluated_as_is, error_cm, loss, sparsity, W_hh_sparsity. A run that did not complete
has one row with its status and empty values.
"""

import json
from pathlib import Path

import pandas as pd

LEVEL_KEYS = ("level", "evaluated_as_is", "error_cm", "loss", "sparsity", "W_hh_sparsity")


def aggregate(paths: list[str], records: list[dict], task: str) -> pd.DataFrame:
    """The tidy sweep table of ``paths`` (sweep.json files, aligned with ``records``)."""
    if len(paths) != len(records):
        raise ValueError(f"{len(paths)} sweep files for {len(records)} runs")
    rows = []
    for path, record in zip(paths, records, strict=True):
        sweep = json.loads(Path(path).read_text())
        base = {
            "task": task,
            **record,
            "status": sweep["status"],
            "run_sparsity": sweep["run_sparsity"],
        }
        levels = sweep["levels"] or [dict.fromkeys(LEVEL_KEYS)]
        rows += [{**base, **{key: level[key] for key in LEVEL_KEYS}} for level in levels]
    return pd.DataFrame(rows)


if "snakemake" in globals():
    from tables_io import log_to

    smk = globals()["snakemake"]
    log_to(smk.log[0])
    aggregate(list(smk.input), smk.params.runs, smk.wildcards.task).to_csv(
        smk.output[0], index=False
    )
