"""Figure: navigation error against sparsity per regularizer (post-hoc pruning sweep).

Reads the tidy sweep CSV; x is the measured global sparsity at each sweep level, y the
decoding error, mean and std over seeds; one panel per training target.
"""

import pandas as pd
import seaborn as sns
from plotting import empty, save


def plot(sweep: pd.DataFrame, path: str) -> None:
    data = sweep[sweep["status"] == "completed"].copy()
    if data.empty:
        empty(path, "no completed runs to sweep")
        return
    data["Training target"] = data["target"].map(lambda t: f"trained to {100 * t:g} %")
    grid = sns.relplot(
        data=data,
        x="level",
        y="error_cm",
        hue="label",
        col="Training target",
        kind="line",
        marker="o",
        errorbar="sd",
        height=3.2,
        aspect=1.2,
        facet_kws={"sharey": True},
    )
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("pruned fraction (levels below the target: model as trained)",
                         "decoding error (cm)")
    grid.legend.set_title("regularizer")
    save(grid.figure, path)


if "snakemake" in globals():
    from tables_io import log_to

    smk = globals()["snakemake"]
    log_to(smk.log[0])
    plot(pd.read_csv(smk.input[0]), smk.output[0])
