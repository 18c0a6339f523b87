"""Figure: rate maps (mean activity over position) of the most spatially varying hidden
units of each regularizer's sparse model (first target and seed): one row per
regularizer, one column per unit; blank = position bin never visited."""

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from plotting import empty, save
from tables_io import snakemake_job


def plot(maps: pd.DataFrame, path: str) -> None:
    if maps.empty:
        empty(path, "no completed runs to show")
        return
    regularizers = list(maps.drop_duplicates("regularizer")[["regularizer", "label"]].itertuples(index=False))
    ncols = int(maps.groupby("regularizer")["unit"].nunique().max())
    fig, axes = plt.subplots(
        len(regularizers), ncols, figsize=(1.4 * ncols + 1.2, 1.4 * len(regularizers) + 0.4), squeeze=False
    )
    for row, (regularizer, label) in enumerate(regularizers):
        cells = maps[maps["regularizer"] == regularizer]
        for col, unit in enumerate(cells["unit"].drop_duplicates()):
            ax = axes[row, col]
            unit_cells = cells[cells["unit"] == unit]
            size = int(unit_cells["x_bin"].max()) + 1
            image = np.full((size, size), np.nan)
            image[unit_cells["y_bin"], unit_cells["x_bin"]] = unit_cells["rate"]
            ax.imshow(image, origin="lower", cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"unit {unit}", fontsize=6)
        for col in range(len(cells["unit"].drop_duplicates()), ncols):
            axes[row, col].set_axis_off()
        axes[row, 0].set_ylabel("\n".join(textwrap.wrap(label, 16)), fontsize=6)
    fig.suptitle("Rate maps of the most spatially varying hidden units (sparse models)", fontsize=9)
    save(fig, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input[0]), smk.output[0])
