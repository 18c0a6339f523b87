"""The per-epoch training history of a task's runs as one tidy CSV (one row per run,
phase and epoch).

Columns: task, run_id, regularizer, label, target, seed, status (of the run), then the
history keys of metrics.json (phase, epoch, pruned_fraction_target, loss, sparsity, and
the task's validation scores: val_loss, val_ppl, val_accuracy for language; val_mse for
adding; ...). A diverged run keeps the epochs it finished.
"""

import pandas as pd
from tables_io import read_run_files, snakemake_job


def aggregate(paths: list[str], records: list[dict], task: str) -> pd.DataFrame:
    """The tidy history of runs ``paths`` (metrics.json files, aligned with ``records``)."""
    rows = []
    for metrics, record in read_run_files(paths, records, "metrics"):
        for entry in metrics["history"]:
            rows.append({"task": task, **record, "status": metrics["status"], **entry})
    return pd.DataFrame(rows)


smk = snakemake_job(globals())
if smk is not None:
    aggregate(list(smk.input), smk.params.runs, smk.wildcards.task).to_csv(smk.output[0], index=False)
