"""Shared helpers of the table, figure and summary scripts (no training, no models)."""

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from geosparse.files import read_json

LATEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


MISSING = "missing"
"""Status of a placeholder row for a grid cell with no run (a partial grid, e.g.
``report_runs.py``): counted in no column, its seed is empty."""


def _not_completed(status: pd.Series) -> int:
    return int((~status.isin(["completed", MISSING])).sum())


RUN_COUNTS = {"n_runs": ("seed", "count"), "n_diverged": ("status", _not_completed)}
"""``groupby(...).agg(**RUN_COUNTS)``: runs per group (placeholders have no seed) and how
many did not complete."""


CELL = ["regularizer", "label", "target"]
"""A grid cell of a task's tables: one named regularizer at one target, over seeds."""


def with_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with every one of ``columns`` (missing ones empty): a tidy history has no
    validation column at all when every run diverged in its first epoch."""
    return frame.reindex(columns=frame.columns.union(columns, sort=False))


PAPER_KEY = ["regularizer", "target"]
"""What a paper value (``paper_values``) is keyed by: a grid cell without its display label."""


def cell_stats(rows: pd.DataFrame, done: pd.DataFrame, **aggregations: tuple) -> pd.DataFrame:
    """Per grid cell: run and diverged counts over ``rows``, then ``aggregations``
    (``name=(column, function)``) and the mean measured sparsities over the completed
    runs ``done``."""
    counts = rows.groupby(CELL, sort=False).agg(**RUN_COUNTS)
    stats = done.groupby(CELL, sort=False).agg(
        **aggregations,
        W_hh_sparsity_mean=("W_hh_sparsity", "mean"),
        sparsity_mean=("sparsity", "mean"),
    )
    return counts.join(stats).reset_index()


def fmt_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"6.29 (1.17)"``; the mean alone if std is missing; ``"-"`` if mean is missing."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({std:.{digits}f})"


def fmt_fraction(value: float) -> str:
    """A sparsity as a percentage with one decimal, ``"-"`` if missing."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def mean_std_column(tidy: pd.DataFrame, key: str, digits: int = 2) -> list[str]:
    """``fmt_mean_std`` of the columns ``<key>_mean`` and ``<key>_std`` of ``tidy``."""
    return [fmt_mean_std(m, s, digits) for m, s in zip(tidy[f"{key}_mean"], tidy[f"{key}_std"], strict=True)]


def measured_columns(tidy: pd.DataFrame) -> dict[str, list[str]]:
    """The trailing display columns of a per-regularizer table: measured W_hh and global
    sparsity (``W_hh_sparsity_mean``, ``sparsity_mean``) and diverged/runs."""
    return {
        "W_hh sparsity": list(tidy["W_hh_sparsity_mean"].map(fmt_fraction)),
        "Global sparsity": list(tidy["sparsity_mean"].map(fmt_fraction)),
        "Diverged": fmt_diverged(tidy),
    }


def fmt_diverged(tidy: pd.DataFrame) -> list[str]:
    """ "diverged/runs" per row of a per-regularizer table (columns n_diverged, n_runs)."""
    return [f"{d}/{n}" for d, n in zip(tidy["n_diverged"], tidy["n_runs"], strict=True)]


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of string cells."""
    cells = table.astype(str)
    lines = [
        "| " + " | ".join(cells.columns) + " |",
        "|" + "|".join("---" for _ in cells.columns) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(char, char) for char in text)


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs ``table`` environment of string cells (needs ``\\usepackage{booktabs}``)."""
    cells = table.astype(str).map(_latex_escape)
    header = " & ".join(_latex_escape(c) for c in cells.columns) + r" \\"
    body = [" & ".join(row) + r" \\" for row in cells.itertuples(index=False)]
    return "\n".join(
        [
            r"\begin{table}[ht]",
            r"\centering",
            rf"\caption{{{_latex_escape(caption)}}}",
            r"\begin{tabular}{" + "l" * len(cells.columns) + "}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def write_table(tidy: pd.DataFrame, display: pd.DataFrame, paths: dict[str, str], caption: str) -> None:
    """Write ``tidy`` as CSV and ``display`` as Markdown and LaTeX to ``paths[csv|md|tex]``."""
    for path in paths.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    tidy.to_csv(paths["csv"], index=False)
    Path(paths["md"]).write_text(f"{caption}\n\n{to_markdown(display)}")
    Path(paths["tex"]).write_text(to_latex(display, caption))


def paper_values(path: str, table: str, phase: str) -> pd.DataFrame:
    """The paper's reported errors of one table/phase: regularizer, target, mean, std and
    the paper's Ng (``paper_n_hidden``)."""
    paper = pd.read_csv(path)
    paper = paper[(paper["table"] == table) & (paper["phase"] == phase)]
    return paper[["regularizer", "target", "error_cm_mean", "error_cm_std", "n_hidden"]].rename(
        columns={
            "error_cm_mean": "paper_error_cm_mean",
            "error_cm_std": "paper_error_cm_std",
            "n_hidden": "paper_n_hidden",
        }
    )


def log_to(path: str) -> None:
    """Send this script's stderr (warnings, tracebacks) to the rule's log file."""
    import sys

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(path, "w")  # noqa: SIM115 - kept open for the script's lifetime


def snakemake_job(namespace: dict):
    """The ``snakemake`` object Snakemake's ``script:`` directive puts into a script's
    globals (``namespace``), with the script's stderr sent to the rule's log; None when
    the script is imported (tests)."""
    smk = namespace.get("snakemake")
    if smk is not None:
        log_to(smk.log[0])
    return smk


def read_run_files(paths: list[str], records: list[dict], kind: str) -> Iterator[tuple[dict, dict]]:
    """``(parsed JSON, grid record)`` of every run file in ``paths`` (one per record of
    the grid, in the same order); ``kind`` names the files in the error message."""
    if len(paths) != len(records):
        raise ValueError(f"{len(paths)} {kind} files for {len(records)} runs")
    for path, record in zip(paths, records, strict=True):
        yield read_json(path), record
