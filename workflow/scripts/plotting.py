"""Shared matplotlib/seaborn set-up of the figure scripts."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import seaborn as sns

sns.set_theme(style="whitegrid", context="paper")


def save(fig: plt.Figure, path: str) -> None:
    """Write ``fig`` as a 150-dpi PNG and close it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def empty(path: str, message: str) -> None:
    """A placeholder figure that says why there is nothing to plot."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    save(fig, path)
