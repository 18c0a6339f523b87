"""Figure: |W_hh| of each regularizer's sparse model (first target and seed of the grid),
rows and columns ordered by the neurons' moduli positions (``geosparse.sparse.
geometry_order``), block-averaged; a band along the diagonal = local connectivity.
Panels marked * have no positions of their own (ordered by reference torus positions)."""

import textwrap

import numpy as np
import pandas as pd
from plotting import empty, panel_grid, save
from tables_io import snakemake_job


def plot(heatmaps: pd.DataFrame, structure: pd.DataFrame, path: str) -> None:
    if heatmaps.empty:
        empty(path, "no completed runs to show")
        return
    own = structure.drop_duplicates("regularizer").set_index("regularizer")["own_positions"]
    labels = list(heatmaps.drop_duplicates("regularizer")[["regularizer", "label"]].itertuples(index=False))
    fig, axes = panel_grid(len(labels), ncols=4)
    for ax, (regularizer, label) in zip(axes, labels, strict=True):
        cells = heatmaps[heatmaps["regularizer"] == regularizer]
        size = int(cells["row"].max()) + 1
        image = np.zeros((size, size))
        image[cells["row"], cells["col"]] = cells["abs_weight"]
        ax.imshow(np.log10(image + 1e-6 * image.max() + 1e-12), cmap="magma", interpolation="nearest")
        title = f"{label}{'' if str(own.get(regularizer)) == 'True' else ' *'}"  # CSV bool or NaN
        ax.set_title("\n".join(textwrap.wrap(title, 26)), fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("|W_hh| in geometry order (log10, block means)", fontsize=9)
    save(fig, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input.heatmaps), pd.read_csv(smk.input.structure), smk.output[0])
