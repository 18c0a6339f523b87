"""Figure: navigation error per regularizer (bars: mean, whiskers: std over seeds) with
the paper's reported means marked, one panel per target sparsity (90 % is the paper's
main comparison)."""

import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch
from plotting import below_panels, empty, save
from tables_io import snakemake_job


def plot(runs: pd.DataFrame, error: pd.DataFrame, path: str) -> None:
    data = runs[(runs["phase"] == "sparse") & (runs["status"] == "completed")].copy()
    if data.empty:
        empty(path, "no completed runs")
        return
    order = list(dict.fromkeys(error["label"]))
    data["Target"] = data["target"].map(lambda t: f"{100 * t:g} % sparse")
    grid = sns.catplot(
        data=data,
        x="error_cm",
        y="label",
        col="Target",
        kind="bar",
        order=order,
        errorbar="sd",
        color="tab:blue",
        height=0.35 * len(order) + 1.5,
        aspect=1.3,
    )
    for (target_label, ax), target in zip(grid.axes_dict.items(), sorted(data["target"].unique()), strict=True):
        paper = error[(error["target"] - target).abs() < 1e-9].set_index("label")
        ys = [i for i, label in enumerate(order) if pd.notna(paper["paper_error_cm_mean"].get(label))]
        xs = [paper["paper_error_cm_mean"][order[i]] for i in ys]
        ax.scatter(xs, ys, marker="D", color="black", zorder=3, label="paper (Ng = 4096)")
        ax.set_title(target_label)
    grid.set_axis_labels("decoding error (cm)", "")
    handles, labels = grid.axes.flat[-1].get_legend_handles_labels()
    below_panels(grid.figure, [Patch(color="tab:blue"), *handles], ["measured (mean, sd over seeds)", *labels])
    save(grid.figure, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input.runs), pd.read_csv(smk.input.error), smk.output[0])
