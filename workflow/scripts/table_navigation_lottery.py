"""Table: lottery-ticket control. Error (cm) of the pruned model and of the same masks
retrained from a random init, mean (std) over the runs that retrained their masks (in a
cell without any, over all its runs), beside the paper's (one seed).

Tidy CSV columns: regularizer, label, target, n_runs, n_diverged (either phase),
sparse_error_cm_mean/std, lottery_error_cm_mean/std, paper_sparse_error_cm,
paper_lottery_error_cm. Without lottery runs in the grid the measured columns are empty.
"""

import pandas as pd
from table_navigation_error import summarise
from tables_io import (
    CELL,
    PAPER_KEY,
    fmt_diverged,
    fmt_fraction,
    fmt_mean_std,
    mean_std_column,
    paper_values,
    snakemake_job,
    write_table,
)

CAPTION = (
    "Lottery-ticket control: navigation error (cm) of the pruned model and of its "
    "masks retrained from a random init, mean (std) over seeds, beside the paper's "
    "(one seed, 90 %)."
)


def paired(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs each row of the table compares: in a cell with lottery-ticket runs, only
    those (a grid may retrain the masks of one seed, as the paper did), so the sparse and
    the retrained errors come from the same runs; every run of a cell without any."""
    lottery = runs[runs["phase"] == "lottery"]
    in_lottery_cell = runs.set_index(CELL).index.isin(lottery.set_index(CELL).index)
    return runs[~in_lottery_cell | runs["run_id"].isin(lottery["run_id"])]


def build(runs: pd.DataFrame, paper_csv: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables; one row per regularizer and target of the grid."""
    runs = paired(runs)
    sparse = summarise(runs, "sparse").set_index(CELL)
    failed = (
        runs.assign(failed=runs["status"] != "completed")
        .groupby([*CELL, "seed"], sort=False)["failed"]
        .any()
        .groupby(CELL, sort=False)
        .sum()
    )
    tidy = pd.DataFrame(
        {
            "n_runs": sparse["n_runs"],
            "n_diverged": failed.astype(int),
            "sparse_error_cm_mean": sparse["error_cm_mean"],
            "sparse_error_cm_std": sparse["error_cm_std"],
        }
    )
    lottery = summarise(runs, "lottery").set_index(CELL)
    tidy["lottery_error_cm_mean"] = lottery["error_cm_mean"]
    tidy["lottery_error_cm_std"] = lottery["error_cm_std"]
    tidy = tidy.reset_index()
    for phase in ("sparse", "lottery"):
        paper = paper_values(paper_csv, "lottery", phase)[["regularizer", "target", "paper_error_cm_mean"]].rename(
            columns={"paper_error_cm_mean": f"paper_{phase}_error_cm"}
        )
        tidy = tidy.merge(paper, on=PAPER_KEY, how="left")
    tidy = tidy.sort_values("target", kind="stable")
    display = pd.DataFrame(
        {
            "Regularizer": tidy["label"],
            "Target": tidy["target"].map(fmt_fraction),
            "Sparse (cm)": mean_std_column(tidy, "sparse_error_cm"),
            "Lottery (cm)": mean_std_column(tidy, "lottery_error_cm"),
            "Paper sparse (cm)": [fmt_mean_std(m, None) for m in tidy["paper_sparse_error_cm"]],
            "Paper lottery (cm)": [fmt_mean_std(m, None) for m in tidy["paper_lottery_error_cm"]],
            "Diverged": fmt_diverged(tidy),
        }
    )
    return tidy, display


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(pd.read_csv(smk.input.runs), smk.input.paper)
    write_table(tidy, display, dict(smk.output), CAPTION)
