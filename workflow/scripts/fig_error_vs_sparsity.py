"""Figure: navigation error against sparsity per regularizer (post-hoc pruning sweep).

Reads the tidy sweep CSV; x is the measured global sparsity at each sweep level, y the
decoding error, mean and std over seeds; one panel per training target.
"""

import pandas as pd
from plotting import empty, save, target_panels
from tables_io import snakemake_job


def plot(sweep: pd.DataFrame, path: str) -> None:
    data = sweep[sweep["status"] == "completed"].copy()
    if data.empty:
        empty(path, "no completed runs to sweep")
        return
    data["Training target"] = data["target"].map(lambda t: f"trained to {100 * t:g} %")
    grid = target_panels(
        data,
        "level",
        "error_cm",
        "Training target",
        "pruned fraction (levels below the target: model as trained)",
        "decoding error (cm)",
    )
    save(grid.figure, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input[0]), smk.output[0])
