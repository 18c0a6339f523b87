"""Aggregate the runs' sweep.json files into one tidy CSV (one row per run and level).

Columns: task, run_id, regularizer, label, target, seed, status, run_sparsity, level,
evaluated_as_is, error_cm, loss, sparsity, W_hh_sparsity. A run that did not complete
has one row with its status and empty values.
"""

import pandas as pd
from tables_io import read_run_files, snakemake_job

LEVEL_KEYS = ("level", "evaluated_as_is", "error_cm", "loss", "sparsity", "W_hh_sparsity")


def aggregate(paths: list[str], records: list[dict], task: str) -> pd.DataFrame:
    """The tidy sweep table of ``paths`` (sweep.json files, aligned with ``records``)."""
    rows = []
    for sweep, record in read_run_files(paths, records, "sweep"):
        base = {
            "task": task,
            **record,
            "status": sweep["status"],
            "run_sparsity": sweep["run_sparsity"],
        }
        levels = sweep["levels"] or [dict.fromkeys(LEVEL_KEYS)]
        rows += [{**base, **{key: level[key] for key in LEVEL_KEYS}} for level in levels]
    return pd.DataFrame(rows)


smk = snakemake_job(globals())
if smk is not None:
    aggregate(list(smk.input), smk.params.runs, smk.wildcards.task).to_csv(smk.output[0], index=False)
