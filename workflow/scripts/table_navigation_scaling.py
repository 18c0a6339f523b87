"""Table: navigation decoding error (cm) against the model size Ng (a size study).

Tidy CSV, one row per (regularizer, size, target) of the grid (``source`` ``measured``)
and per (regularizer, target) the paper reports at its Ng (``source`` ``paper``):
source, regularizer, label, size, target, n_runs (0: not run), n_diverged,
error_cm_mean, error_cm_std (over completed seeds), wall_time_s_mean,
W_hh_sparsity_mean, sparsity_mean (measured, not the target).

Display (Markdown, LaTeX): one row per target and size, the error mean (std) of every
regularizer ("not run" for a size without runs, "diverged" when none completed), the
ratio of the mean errors of ``ratio`` = (numerator, denominator) regularizers (the
first control over the first geometric regularizer of ``claims``), then the paper's row.
"""

import math

import pandas as pd
from aggregate_runs import aggregate
from tables_io import CELL, PAPER_KEY, RUN_COUNTS, fmt_mean_std, paper_values, snakemake_job, write_table

CAPTION = (
    "Navigation decoding error (cm) against the model size Ng, mean (std) over seeds, every "
    "other setting fixed; the ratio of two regularizers' mean errors per size; the paper's "
    "values at its Ng (its full schedule, 5 seeds)."
)

SCALING_CELL = [*CELL[:-1], "size", CELL[-1]]
"""A cell of the scaling table: one named regularizer at one size and target, over seeds."""

MEASURED, PAPER = "measured", "paper"
NOT_RUN = "not run"


def summarise(runs: pd.DataFrame, cells: list[dict]) -> pd.DataFrame:
    """Per cell of the grid (``cells``: its run records) the run counts and statistics of
    ``runs`` (tidy rows of ``aggregate_runs``, sparse phase); cells without runs have
    ``n_runs`` 0."""
    grid = pd.DataFrame(cells)[SCALING_CELL].drop_duplicates()
    rows = runs[runs["phase"] == "sparse"]
    done = rows[rows["status"] == "completed"]
    counts = rows.groupby(SCALING_CELL).agg(**RUN_COUNTS).reset_index()
    stats = (
        done.groupby(SCALING_CELL)
        .agg(
            error_cm_mean=("error_cm", "mean"),
            error_cm_std=("error_cm", "std"),
            wall_time_s_mean=("wall_time_s", "mean"),
            W_hh_sparsity_mean=("W_hh_sparsity", "mean"),
            sparsity_mean=("sparsity", "mean"),
        )
        .reset_index()
    )
    tidy = grid.merge(counts, on=SCALING_CELL, how="left").merge(stats, on=SCALING_CELL, how="left")
    tidy[list(RUN_COUNTS)] = tidy[list(RUN_COUNTS)].fillna(0).astype(int)
    return tidy.assign(source=MEASURED)


def paper_rows(paper_csv: str, cells: list[dict]) -> pd.DataFrame:
    """The paper's errors (main table, sparse phase) of the grid's regularizers and
    targets, at the paper's Ng."""
    grid = pd.DataFrame(cells)[CELL].drop_duplicates()
    paper = grid.merge(paper_values(paper_csv, "main", "sparse"), on=PAPER_KEY)
    return pd.DataFrame(
        {
            "source": PAPER,
            "regularizer": paper["regularizer"],
            "label": paper["label"],
            "size": paper["paper_n_hidden"].astype(int),
            "target": paper["target"],
            "error_cm_mean": paper["paper_error_cm_mean"],
            "error_cm_std": paper["paper_error_cm_std"],
        }
    )


def ratios(tidy: pd.DataFrame, numerator: str, denominator: str) -> pd.Series:
    """Mean error of ``numerator`` over that of ``denominator`` per (source, size, target);
    NaN where either is missing."""
    means = tidy.pivot_table(
        index=["source", "size", "target"], columns="regularizer", values="error_cm_mean", dropna=False
    )
    if numerator not in means or denominator not in means:
        return pd.Series(math.nan, index=means.index)
    return means[numerator] / means[denominator]


def cell_text(row: pd.Series) -> str:
    """A display cell: mean (std), or why there is none."""
    if row["source"] == MEASURED and row["n_runs"] == 0:
        return NOT_RUN
    if math.isnan(row["error_cm_mean"]):
        return "diverged"
    return fmt_mean_std(row["error_cm_mean"], row["error_cm_std"])


def build(
    runs: pd.DataFrame, cells: list[dict], paper_csv: str, ratio: tuple[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables of the runs ``runs`` of the grid whose run records are ``cells``."""
    tidy = pd.concat([summarise(runs, cells), paper_rows(paper_csv, cells)], ignore_index=True)
    tidy = tidy[
        [
            "source",
            *SCALING_CELL,
            *RUN_COUNTS,
            "error_cm_mean",
            "error_cm_std",
            "wall_time_s_mean",
            "W_hh_sparsity_mean",
            "sparsity_mean",
        ]
    ].astype({column: "Int64" for column in RUN_COUNTS})  # empty for the paper's rows
    labels = dict(zip(tidy["regularizer"], tidy["label"], strict=False))
    order = list(dict.fromkeys(cell["regularizer"] for cell in cells))
    numerator, denominator = ratio
    ratio_of = ratios(tidy, numerator, denominator)
    ratio_name = f"{labels.get(numerator, numerator)} / {labels.get(denominator, denominator)}"
    lines = []
    for (target, source, size), rows in tidy.groupby(["target", "source", "size"], sort=False):
        by_name = rows.set_index("regularizer")
        value = ratio_of.get((source, size, target), math.nan)
        wall = rows["wall_time_s_mean"].mean()
        lines.append(
            {
                "Target": f"{100 * target:g} %",
                "Ng": f"{size} (paper)" if source == PAPER else str(size),
                **{labels[r]: cell_text(by_name.loc[r]) if r in by_name.index else "-" for r in order},
                ratio_name: "-" if math.isnan(value) else f"{value:.2f}",
                "Wall time per run (min)": "-" if math.isnan(wall) else f"{wall / 60:.1f}",
                "_order": (target, source == PAPER, size),
            }
        )
    lines.sort(key=lambda line: line["_order"])
    return tidy, pd.DataFrame(lines).drop(columns="_order")


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(
        aggregate(list(smk.input.runs), smk.params.runs, "navigation"),
        smk.params.cells,
        smk.input.paper,
        tuple(smk.params.ratio),
    )
    write_table(tidy, display, dict(smk.output), CAPTION)
