"""Shared matplotlib/seaborn set-up of the figure scripts."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from tables_io import with_columns

sns.set_theme(style="whitegrid", context="paper")


def save(fig: plt.Figure, path: str) -> None:
    """Write ``fig`` as a 150-dpi PNG at ``path`` and as a PDF beside it (for papers),
    stamped with the grid it was made at (``results/<grid>/figures/<name>.png``: the
    folder above ``figures/``), and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # under the lowest of the figure's contents (tick labels, a legend below the panels),
    # so it overlaps none of them; the tight bounding box grows to hold it
    lowest = fig.get_tightbbox().y0 / fig.get_figheight()  # inches -> figure fraction
    fig.text(0.995, lowest, f"grid: {path.parent.parent.name}", ha="right", va="top", fontsize=7, color="0.4")
    fig.savefig(path, dpi=150, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)


def sparse_phase(history: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The sparse-phase epochs of a tidy history that have every one of ``columns`` (a
    copy; none when no run got that far, e.g. every run diverged in its first epoch and
    the history has no such column at all)."""
    history = with_columns(history, ["phase", *columns])
    return history[history["phase"] == "sparse"].dropna(subset=columns).copy()


TRAINING_TARGET = "Training target"
"""The column ``with_training_target`` adds: one figure panel per training target."""


def with_training_target(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with the panel label of its runs' training target ("pruned to 90 %")."""
    return data.assign(**{TRAINING_TARGET: data["target"].map(lambda t: f"pruned to {100 * t:g} %")})


def empty(path: str, message: str) -> None:
    """A placeholder figure that says why there is nothing to plot."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    save(fig, path)


def below_panels(fig: plt.Figure, handles: list, labels: list[str], title: str | None = None) -> None:
    """One legend for the whole figure, centred under its panels in as few rows as fit
    (at most 3 entries per row), so the panels keep the figure's full width."""
    fig.legend(
        handles=handles,
        labels=labels,
        title=title,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(3, len(labels)),
        frameon=False,
    )


def target_panels(
    data: pd.DataFrame,
    x: str,
    y: str,
    panel: str,
    xlabel: str,
    ylabel: str,
    extra: tuple[tuple[Artist, str], ...] = (),
) -> sns.FacetGrid:
    """Lines of ``y`` against ``x`` per regularizer (``label``; mean and sd over seeds),
    one panel per value of the column ``panel`` (e.g. the training target); the legend
    (the regularizers, then the ``extra`` (handle, label) entries) goes under the panels."""
    grid = sns.relplot(
        data=data,
        x=x,
        y=y,
        hue="label",
        col=panel,
        kind="line",
        marker="o",
        errorbar="sd",
        height=3.2,
        aspect=1.2,
        facet_kws={"sharey": True, "legend_out": False},  # no room kept beside the panels
    )
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels(xlabel, ylabel)
    grid.tick_params(axis="x", labelrotation=45)  # sweep levels sit close together
    legend = grid.legend
    handles = [*legend.legend_handles, *(h for h, _ in extra)]
    labels = [*(t.get_text() for t in legend.texts), *(label for _, label in extra)]
    legend.remove()
    below_panels(grid.figure, handles, labels, "regularizer")
    return grid


def panel_grid(n: int, ncols: int, size: float = 2.2) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure of ``n`` square panels in rows of ``ncols``; unused axes hidden."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_axis_off()
    return fig, flat[:n]
