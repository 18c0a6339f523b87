"""Table: adding-problem test MSE per regularizer and target, mean (std) and per seed,
beside the baseline of always predicting 1 (MSE 1/6 = 0.167; read from the runs'
metrics, ``geosparse.tasks.adding.BASELINE_MSE``), and the stability of each run above
``claims.adding.above`` (docs/claims.md).

A run's rise (``run_stability``): the largest validation MSE over the epochs whose
scheduled pruned fraction exceeds ``above``, over the best validation MSE of the epochs
before them. Unstable: rise above ``claims.adding.rise``, a non-finite validation MSE
above ``above``, or a diverged run.

Tidy CSV columns: regularizer, label, target, n_runs, n_diverged, test_mse_mean,
test_mse_std, test_mse_per_seed ("s0=0.0117 s1=..."), baseline_mse, n_below_baseline
(completed seeds with test MSE below the baseline), rise_max, n_unstable (NaN where the
target is not above ``above``), W_hh_sparsity_mean, sparsity_mean (measured).
"""

import math

import pandas as pd
from tables_io import (
    CELL,
    RUN_COUNTS,
    cell_stats,
    fmt_fraction,
    mean_std_column,
    measured_columns,
    snakemake_job,
    with_columns,
    write_table,
)

CAPTION = (
    "Adding problem: test MSE of the pruned models, mean (std) over seeds and per seed, "
    "beside the constant-prediction baseline (always 1: MSE 0.167); seeds below the "
    "baseline; unstable runs above {above:.0%} sparsity (validation MSE rising above "
    "{rise:g}x its best before, or diverged) and the largest rise; measured sparsity of "
    "W_hh and of all pruned matrices."
)


def run_stability(history: pd.DataFrame, runs: pd.DataFrame, above: float, rise: float) -> pd.DataFrame:
    """Per run of the sparse phase (``runs``: the tidy runs, one row per run and phase):
    run_id, rise and unstable (None where the run's target is not above ``above``)."""
    history = with_columns(history, ["val_mse"])
    sparse = history[history["phase"] == "sparse"]
    rows = []
    for run in runs[(runs["phase"] == "sparse") & runs["seed"].notna()].itertuples(index=False):
        if run.target <= above:
            rows.append({"run_id": run.run_id, "rise": math.nan, "unstable": None})
            continue
        h = sparse[sparse["run_id"] == run.run_id]
        late = h[h["pruned_fraction_target"] > above]
        best = h[h["pruned_fraction_target"] <= above]["val_mse"].min()
        ratio = late["val_mse"].max() / best if len(late) and best > 0 else math.nan
        unstable = run.status != "completed" or late.empty or bool(late["val_mse"].isna().any()) or not ratio <= rise
        rows.append({"run_id": run.run_id, "rise": ratio, "unstable": unstable})
    return pd.DataFrame(rows, columns=["run_id", "rise", "unstable"])


def _per_seed(done: pd.DataFrame) -> pd.Series:
    """``s0=0.0123 s1=...`` per grid cell of the completed runs ``done`` (none: empty)."""
    if done.empty:
        return pd.Series(index=pd.MultiIndex.from_tuples([], names=CELL), dtype=object)
    return (
        done.sort_values("seed")
        .groupby(CELL, sort=False)
        .apply(
            lambda d: " ".join(f"s{int(s)}={v:.4f}" for s, v in zip(d["seed"], d["test_mse"], strict=True)),
            include_groups=False,
        )
    )


def build(runs: pd.DataFrame, history: pd.DataFrame, above: float, rise: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables of the sparse models."""
    rows = runs[runs["phase"] == "sparse"]
    stability = run_stability(history, rows, above, rise)
    rows = rows.merge(stability, on="run_id", how="left")
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
    )
    measured = rows[rows["seed"].notna()]
    unstable = measured.groupby(CELL, sort=False).agg(
        rise_max=("rise", "max"), n_unstable=("unstable", lambda u: math.nan if u.isna().all() else int(u.sum()))
    )
    tidy = tidy.join(unstable, on=CELL).join(_per_seed(done).rename("test_mse_per_seed"), on=CELL)
    tidy = tidy.sort_values("target", kind="stable")
    tidy["n_below_baseline"] = tidy["n_below_baseline"].fillna(0).astype(int)
    tidy = tidy[
        [
            *CELL,
            *RUN_COUNTS,
            "test_mse_mean",
            "test_mse_std",
            "test_mse_per_seed",
            "baseline_mse",
            "n_below_baseline",
            "rise_max",
            "n_unstable",
            "W_hh_sparsity_mean",
            "sparsity_mean",
        ]
    ]
    display = pd.DataFrame(
        {
            "Regularizer": tidy["label"],
            "Target": tidy["target"].map(fmt_fraction),
            "Test MSE": mean_std_column(tidy, "test_mse", 4),
            "Per seed": tidy["test_mse_per_seed"].fillna("-"),
            "Baseline": ["-" if pd.isna(b) else f"{b:.3f}" for b in tidy["baseline_mse"]],
            "Below baseline": [f"{b}/{n}" for b, n in zip(tidy["n_below_baseline"], tidy["n_runs"], strict=True)],
            "Unstable": [
                "-" if pd.isna(u) else f"{int(u)}/{n}" for u, n in zip(tidy["n_unstable"], tidy["n_runs"], strict=True)
            ],
            "Largest rise": ["-" if pd.isna(r) else f"{r:.1f}x" for r in tidy["rise_max"]],
            **measured_columns(tidy),
        }
    )
    return tidy, display


smk = snakemake_job(globals())
if smk is not None:
    claims = smk.params.claims
    tidy, display = build(pd.read_csv(smk.input.runs), pd.read_csv(smk.input.history), claims["above"], claims["rise"])
    write_table(tidy, display, dict(smk.output), CAPTION.format(above=claims["above"], rise=claims["rise"]))
