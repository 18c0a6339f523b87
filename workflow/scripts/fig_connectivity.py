"""Figure: does the surviving connectivity follow the geometry? Fraction of W_hh kept,
mean |W_hh| and the regularizer's coefficient R against the moduli distance between
the two neurons, for each trained model with neuron positions (tidy connectivity CSV)."""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from plotting import empty, save
from tables_io import snakemake_job

PANELS = (
    ("fraction_kept", "fraction of W_hh kept"),
    ("mean_abs_weight", "mean |W_hh|"),
    ("mean_coefficient", "penalty coefficient R"),
)


def plot(conn: pd.DataFrame, path: str) -> None:
    if conn.empty:
        empty(path, "no trained model with a moduli space in the grid")
        return
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    for ax, (column, title) in zip(axes, PANELS, strict=True):
        sns.lineplot(data=conn, x="distance", y=column, hue="label", marker=".", ax=ax, legend=ax is axes[-1])
        ax.set(xlabel="moduli distance between neurons", ylabel="", title=title)
    axes[-1].legend(title="regularizer", bbox_to_anchor=(1.02, 1), loc="upper left")
    first = conn.iloc[0]
    fig.suptitle(f"Trained to {100 * first['target']:g} %, seed {first['seed']}", y=1.02)
    save(fig, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input[0]), smk.output[0])
