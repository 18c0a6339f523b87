"""Table: adding-problem test MSE per regularizer and target, mean (std) over completed
seeds, beside the baseline of always predicting 1 (MSE 1/6 = 0.167, PAPER.md; read from
the runs' metrics, ``geosparse.tasks.adding.BASELINE_MSE``).

Tidy CSV columns: regularizer, label, target, n_runs, n_diverged, test_mse_mean,
test_mse_std, baseline_mse, n_below_baseline (completed seeds with test MSE below the
baseline), W_hh_sparsity_mean, sparsity_mean (measured, not the target).
"""

import pandas as pd
from tables_io import (
    CELL,
    RUN_COUNTS,
    cell_stats,
    fmt_fraction,
    mean_std_column,
    measured_columns,
    snakemake_job,
    write_table,
)

CAPTION = (
    "Adding problem: test MSE of the pruned models, mean (std) over seeds, beside the "
    "constant-prediction baseline (always 1: MSE 0.167); seeds below the baseline; "
    "measured sparsity of W_hh and of all pruned matrices."
)


def build(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables of the sparse models."""
    rows = runs[runs["phase"] == "sparse"]
    done = rows[rows["status"] == "completed"].assign(
        below_baseline=lambda d: (d["test_mse"] < d["baseline_mse"]).astype(int)
    )
    tidy = cell_stats(
        rows,
        done,
        test_mse_mean=("test_mse", "mean"),
        test_mse_std=("test_mse", "std"),
        baseline_mse=("baseline_mse", "first"),
        n_below_baseline=("below_baseline", "sum"),
    ).sort_values("target", kind="stable")
    tidy["n_below_baseline"] = tidy["n_below_baseline"].fillna(0).astype(int)
    tidy = tidy[
        [
            *CELL,
            *RUN_COUNTS,
            "test_mse_mean",
            "test_mse_std",
            "baseline_mse",
            "n_below_baseline",
            "W_hh_sparsity_mean",
            "sparsity_mean",
        ]
    ]
    display = pd.DataFrame(
        {
            "Regularizer": tidy["label"],
            "Target": tidy["target"].map(fmt_fraction),
            "Test MSE": mean_std_column(tidy, "test_mse", 3),
            "Baseline": ["-" if pd.isna(b) else f"{b:.3f}" for b in tidy["baseline_mse"]],
            "Below baseline": [f"{b}/{n}" for b, n in zip(tidy["n_below_baseline"], tidy["n_runs"], strict=True)],
            **measured_columns(tidy),
        }
    )
    return tidy, display


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(pd.read_csv(smk.input.runs))
    write_table(tidy, display, dict(smk.output), CAPTION)
