"""Figure: adding-problem validation MSE against the sparsity reached, one line per
regularizer (mean over seeds, the band from the lowest to the highest seed: on a log
scale a band of +- one sd would cross zero), the baseline of always predicting 1 (MSE
1/6) dashed, the claim's "above" threshold (``claims.adding.above``) dotted, one panel
per training target. Sparse phase only; the x value of an epoch is
the measured global sparsity of the pruned matrices during it (history ``sparsity``)."""

import pandas as pd
import seaborn as sns
from plotting import TRAINING_TARGET, empty, save, sparse_phase, with_training_target
from tables_io import snakemake_job

from geosparse.tasks.adding import BASELINE_MSE


def plot(history: pd.DataFrame, path: str, above: float) -> None:
    data = sparse_phase(history, ["val_mse", "sparsity"])
    if data.empty:
        empty(path, "no validation MSE to plot")
        return
    data["sparsity (%)"] = (100 * data["sparsity"]).round(1)
    data = with_training_target(data)
    grid = sns.relplot(
        data=data,
        x="sparsity (%)",
        y="val_mse",
        hue="label",
        col=TRAINING_TARGET,
        kind="line",
        errorbar=("pi", 100),
        height=3.4,
        aspect=1.6,
    )
    grid.set(yscale="log")
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("sparsity reached (%)", "validation MSE (mean, band: range over seeds)")
    for ax in grid.axes.flat:
        ax.axhline(BASELINE_MSE, color="0.3", linestyle="--", linewidth=1)
        ax.axvline(100 * above, color="0.5", linestyle=":", linewidth=1)
        ax.text(ax.get_xlim()[0], BASELINE_MSE * 1.1, " baseline (always 1)", fontsize=7, color="0.3")
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(4, data["label"].nunique()), title=None)
    grid.figure.suptitle("Adding problem: validation MSE while pruning", y=1.03)
    save(grid.figure, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input.history), smk.output.png, smk.params.claims["above"])
