"""Aggregate the runs' inference.json files into one tidy CSV (one row per run, format,
case and batch size).

Columns: task, run_id, regularizer, label, target, seed, status, n_hidden, W_hh_sparsity,
block_density_<b>_none / _geometry (b = 16, 32, 64; fraction of non-empty b x b blocks of
W_hh before / after geometry ordering, empty without positions), threads,
load_average_before / _after, then per row: format, kind (step / sequence), batch, steps,
time_ms, calls, speedup_vs_dense, max_rel_error, W_hh_bytes_memory / _stored,
model_bytes_memory / _stored. A run that did not complete has one row with its status
and empty values.
"""

import pandas as pd
from tables_io import read_run_files, snakemake_job

from geosparse.sparse.formats import BLOCKSIZES, ORDERS

ROW_KEYS = (
    "format",
    "kind",
    "batch",
    "steps",
    "time_ms",
    "calls",
    "speedup_vs_dense",
    "max_rel_error",
    "W_hh_bytes_memory",
    "W_hh_bytes_stored",
    "model_bytes_memory",
    "model_bytes_stored",
)


def run_base(result: dict, record: dict, task: str) -> dict:
    """The per-run columns of one inference.json."""
    info = result.get("info") or {}
    blocks = info.get("block_density", {})
    base = {
        "task": task,
        **record,
        "status": result["status"],
        "n_hidden": info.get("n_hidden"),
        "W_hh_sparsity": info.get("W_hh_sparsity"),
        "threads": result.get("threads"),
    }
    for b in BLOCKSIZES:
        for order in ORDERS:
            base[f"block_density_{b}_{order}"] = blocks.get(str(b), {}).get(order)
    load = result.get("load_average_1min", {})
    base["load_average_before"], base["load_average_after"] = load.get("before"), load.get("after")
    return base


def aggregate(paths: list[str], records: list[dict], task: str) -> pd.DataFrame:
    """The tidy inference table of ``paths`` (inference.json files, aligned with ``records``)."""
    rows = []
    for result, record in read_run_files(paths, records, "inference"):
        base = run_base(result, record, task)
        timed = result["rows"] or [dict.fromkeys(ROW_KEYS)]
        rows += [{**base, **{key: row[key] for key in ROW_KEYS}} for row in timed]
    return pd.DataFrame(rows)


smk = snakemake_job(globals())
if smk is not None:
    aggregate(list(smk.input), smk.params.runs, "navigation").to_csv(smk.output[0], index=False)
