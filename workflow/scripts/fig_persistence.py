"""Figure: persistence diagrams (H0, H1, H2) of each regularizer's population point cloud
(first target and seed), with the long-lived threshold (``geosparse.topology``: bars
above the dashed line count) and the counted bars in the title."""

import textwrap

import numpy as np
import pandas as pd
from plotting import empty, panel_grid, save
from tables_io import snakemake_job

COLORS = {0: "tab:blue", 1: "tab:orange", 2: "tab:green"}


def plot(bars: pd.DataFrame, structure: pd.DataFrame, first: tuple[float, int], path: str) -> None:
    target, seed = first
    runs = structure[
        (np.isclose(structure["target"], target)) & (structure["seed"] == seed) & (structure["status"] == "completed")
    ]
    if runs.empty:
        empty(path, "no completed runs to show")
        return
    fig, axes = panel_grid(len(runs), ncols=4, size=2.4)
    for ax, run in zip(axes, runs.itertuples(index=False), strict=True):
        mine = bars[bars["run_id"] == run.run_id]
        top = float(np.nanmax(mine["death"])) if mine["death"].notna().any() else 1.0
        for dim, group in mine.groupby("dim"):
            death = group["death"].fillna(top * 1.05)
            ax.scatter(group["birth"], death, s=6, color=COLORS.get(dim), label=f"H{dim}")
        ax.plot([0, top * 1.05], [0, top * 1.05], color="0.6", lw=0.8)
        ax.plot(
            [0, top * 1.05],
            [run.long_lived_threshold, top * 1.05 + run.long_lived_threshold],
            "--",
            color="0.3",
            lw=0.8,
            label="long-lived above",
        )
        title = f"{run.label}: ({int(run.h0)}, {int(run.h1)}, {int(run.h2)})"
        ax.set_title("\n".join(textwrap.wrap(title, 26)), fontsize=7)
        ax.set_xlabel("birth", fontsize=7)
        ax.set_ylabel("death", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6, loc="lower right")
    fig.suptitle("Persistence of the population activity over position (H0, H1, H2 long-lived)", fontsize=9)
    save(fig, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(
        pd.read_csv(smk.input.bars),
        pd.read_csv(smk.input.structure),
        (float(smk.params.first[0]), smk.params.first[1]),
        smk.output[0],
    )
