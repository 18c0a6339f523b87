"""Table: navigation decoding error (cm) per regularizer and target, beside the paper's.

Tidy CSV columns: regularizer, label, target, n_runs, n_diverged, error_cm_mean,
error_cm_std (over completed seeds), paper_error_cm_mean, paper_error_cm_std,
W_hh_sparsity_mean, sparsity_mean (measured, not the target).
"""

import pandas as pd
from tables_io import (
    CELL,
    PAPER_KEY,
    RUN_COUNTS,
    cell_stats,
    fmt_fraction,
    mean_std_column,
    measured_columns,
    paper_values,
    snakemake_job,
    write_table,
)

CAPTION = (
    "Navigation decoding error (cm) after pruning, mean (std) over seeds, beside the "
    "paper's (Ng = 4096, 5 seeds); measured sparsity of W_hh and of all pruned matrices."
)


def summarise(runs: pd.DataFrame, phase: str) -> pd.DataFrame:
    """Per (regularizer, target): run count, diverged count, error mean/std, sparsities."""
    rows = runs[runs["phase"] == phase]
    done = rows[rows["status"] == "completed"]
    return cell_stats(rows, done, error_cm_mean=("error_cm", "mean"), error_cm_std=("error_cm", "std"))


def build(runs: pd.DataFrame, paper_csv: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables of the sparse models."""
    tidy = summarise(runs, "sparse").merge(paper_values(paper_csv, "main", "sparse"), on=PAPER_KEY, how="left")
    tidy = tidy[
        [
            *CELL,
            *RUN_COUNTS,
            "error_cm_mean",
            "error_cm_std",
            "paper_error_cm_mean",
            "paper_error_cm_std",
            "W_hh_sparsity_mean",
            "sparsity_mean",
        ]
    ].sort_values("target", kind="stable")
    display = pd.DataFrame(
        {
            "Regularizer": tidy["label"],
            "Target": tidy["target"].map(fmt_fraction),
            "Error (cm)": [
                cell if n else "not run"
                for cell, n in zip(mean_std_column(tidy, "error_cm"), tidy["n_runs"], strict=True)
            ],
            "Paper (cm)": mean_std_column(tidy, "paper_error_cm"),
            **measured_columns(tidy),
        }
    )
    return tidy, display


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(pd.read_csv(smk.input.runs), smk.input.paper)
    write_table(tidy, display, dict(smk.output), CAPTION)
