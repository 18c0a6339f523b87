"""Figure: navigation decoding error against the model size Ng (log2 axis).

One line per regularizer (mean over seeds, whisker: std), one panel per target sparsity,
from the tidy scaling table (``table_navigation_scaling.py``); the paper's reported means
at its Ng as hollow stars in the regularizer's colour; sizes of the grid without runs are
labelled "not run" on the axis.
"""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from plotting import save
from table_navigation_scaling import MEASURED, NOT_RUN, PAPER
from tables_io import snakemake_job


def plot(table: pd.DataFrame, path: str) -> None:
    """Draw the scaling figure of the tidy scaling table ``table`` to ``path``."""
    measured = table[table["source"] == MEASURED]
    paper = table[table["source"] == PAPER]
    labels = list(dict.fromkeys(measured["label"]))
    colours = dict(zip(labels, sns.color_palette(n_colors=len(labels)), strict=True))
    targets = list(dict.fromkeys(measured["target"]))
    sizes = sorted(set(table["size"]))
    ran = set(measured.loc[measured["n_runs"] > 0, "size"])
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 3.8), squeeze=False, sharey=True)
    for ax, target in zip(axes[0], targets, strict=True):
        here = measured[(measured["target"] == target) & measured["error_cm_mean"].notna()]
        sns.lineplot(
            data=here,
            x="size",
            y="error_cm_mean",
            hue="label",
            hue_order=labels,
            palette=colours,
            marker="o",
            ax=ax,
        )
        for label, rows in here.groupby("label"):
            ax.errorbar(
                rows["size"],
                rows["error_cm_mean"],
                yerr=rows["error_cm_std"].fillna(0),
                fmt="none",
                ecolor=colours[label],
                capsize=3,
            )
        for row in paper[paper["target"] == target].itertuples(index=False):
            ax.scatter(
                [row.size],
                [row.error_cm_mean],
                marker="*",
                s=160,
                facecolors="none",
                edgecolors=colours[row.label],
                linewidths=1.4,
                zorder=3,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) if s in ran else f"{s}\n{NOT_RUN}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("Ng (hidden units)")
        ax.set_ylabel("decoding error (cm)")
        ax.set_title(f"trained to {100 * target:g} %")
        handles, names = ax.get_legend_handles_labels()
        star = plt.Line2D(
            [],
            [],
            marker="*",
            linestyle="none",
            markersize=11,
            markerfacecolor="none",
            markeredgecolor="0.3",
            label="paper (5 seeds, its schedule)",
        )
        ax.legend(
            handles=[*handles, star],
            labels=[*names, star.get_label()],
            fontsize=7,
            title="regularizer",
            title_fontsize=7,
        )
    save(fig, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input.table), smk.output.png)
