"""Figure: language-model validation loss per epoch, one line per regularizer (mean and
std over seeds), one panel per training target: the stability claim (a rising or
diverging validation loss under pruning). Sparse phase only; the title names the corpus
(FIXTURE when the runs used the fixture corpus, not WikiText-2)."""

import pandas as pd
from matplotlib.ticker import MaxNLocator
from plotting import TRAINING_TARGET, empty, save, sparse_phase, target_panels, with_training_target
from table_language import corpus_label
from tables_io import snakemake_job


def title(runs: pd.DataFrame) -> str:
    """The figure title, naming the corpus (FIXTURE runs are not WikiText-2 results)."""
    corpus = corpus_label(runs["corpus"])
    if "FIXTURE" in corpus:
        return f"Language modelling: {corpus} corpus (not WikiText-2 results)"
    return f"Language modelling: {corpus}"


def plot(history: pd.DataFrame, runs: pd.DataFrame, path: str) -> None:
    data = sparse_phase(history, ["val_loss"])
    if data.empty:
        empty(path, "no validation losses to plot")
        return
    data["epoch"] = data["epoch"] + 1
    data = with_training_target(data)
    grid = target_panels(
        data,
        "epoch",
        "val_loss",
        TRAINING_TARGET,
        "epoch (pruned fraction ramps up linearly)",
        "validation loss (nats/token)",
    )
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    grid.figure.suptitle(title(runs), y=1.04)
    save(grid.figure, path)


smk = snakemake_job(globals())
if smk is not None:
    plot(pd.read_csv(smk.input.history), pd.read_csv(smk.input.runs), smk.output[0])
