"""Figure: navigation error against sparsity per regularizer (post-hoc pruning sweep).

Reads the tidy sweep CSV; x is the pruned fraction of each sweep level, y the decoding
error, mean and std over seeds; one panel per training target. The paper's reported
error of each regularizer at that target (``paper_results.navigation``, main table) is
marked with a black-edged diamond in the regularizer's colour, at x = the target.
"""

import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from plotting import empty, save, target_panels
from tables_io import paper_values, snakemake_job


def plot(sweep: pd.DataFrame, paper_csv: str, path: str) -> None:
    data = sweep[sweep["status"] == "completed"].copy()
    if data.empty:
        empty(path, "no completed runs to sweep")
        return
    data["Training target"] = data["target"].map(lambda t: f"trained to {100 * t:g} %")
    paper_marker = Line2D([], [], marker="D", linestyle="", color="white", markeredgecolor="black")
    grid = target_panels(
        data,
        "level",
        "error_cm",
        "Training target",
        "",
        "decoding error (cm)",
        extra=((paper_marker, "paper (Ng = 4096), at the target"),),
    )
    grid.figure.supxlabel("pruned fraction (levels below the target: model as trained)", y=0.0)
    labels = dict(zip(data["regularizer"], data["label"], strict=False))
    order = list(dict.fromkeys(data["label"]))  # relplot's hue order: first appearance
    colours = dict(zip(order, sns.color_palette(n_colors=len(order)), strict=True))
    paper = paper_values(paper_csv, "main", "sparse")
    for target in data["target"].unique():
        ax = grid.axes_dict[f"trained to {100 * target:g} %"]
        here = paper[((paper["target"] - target).abs() < 1e-9) & paper["regularizer"].isin(labels)]
        for row in here.itertuples(index=False):
            ax.scatter(
                [target],
                [row.paper_error_cm_mean],
                marker="D",
                s=36,
                zorder=4,
                color=colours[labels[row.regularizer]],
                edgecolor="black",
            )
    save(grid.figure, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input.sweep), smk.input.paper, smk.output[0])
