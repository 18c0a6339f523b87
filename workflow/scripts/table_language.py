"""Table: language modelling test loss (nats/token), perplexity and next-token accuracy
per regularizer and target, mean (std) over completed seeds.

Tidy CSV columns: regularizer, label, target, data (``WikiText-2`` or ``FIXTURE``: the
corpus the runs were trained on), n_runs, n_diverged, test_loss_mean/std,
test_ppl_mean/std, test_accuracy_mean/std, val_loss_increases_mean, W_hh_sparsity_mean,
sparsity_mean (measured, not the target). the paper reports no numbers for this task.
Runs on the fixture corpus (built from the WikiText-2 valid and test files) are labelled
FIXTURE in the data column and in the caption; they are not WikiText-2 results.
"""

import pandas as pd
from tables_io import CELL, RUN_COUNTS, fmt_fraction, mean_std_column, measured_columns, snakemake_job, write_table

CAPTION = (
    "Language modelling ({data}): test loss (nats/token), perplexity and next-token "
    "accuracy of the pruned models, mean (std) over seeds; measured sparsity of the "
    "recurrent weights (W_hh) and of all pruned matrices."
)
FIXTURE_NOTE = (
    "FIXTURE corpus, not WikiText-2 results: train = part of the WikiText-2 valid lines, "
    "valid = the rest, test = WikiText-2 test"
)
CORPUS_LABELS = {"wikitext2": "WikiText-2", "fixture": "FIXTURE"}
SCORES = ("test_loss", "test_ppl", "test_accuracy")


def corpus_label(corpora) -> str:
    """``WikiText-2``, ``FIXTURE`` or both (``FIXTURE + WikiText-2``) for a set of corpora."""
    return " + ".join(sorted(CORPUS_LABELS.get(c, str(c)) for c in set(corpora)))


def caption(tidy: pd.DataFrame) -> str:
    labels = set(tidy["data"])
    data = FIXTURE_NOTE if any("FIXTURE" in label for label in labels) else "WikiText-2"
    return CAPTION.format(data=data)


def build(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables of the sparse models."""
    rows = runs[runs["phase"] == "sparse"]
    done = rows[rows["status"] == "completed"]
    counts = rows.groupby(CELL, sort=False).agg(
        data=("corpus", corpus_label),
        **RUN_COUNTS,
    )
    stats = done.groupby(CELL, sort=False).agg(
        **{f"{key}_{stat}": (key, stat) for key in SCORES for stat in ("mean", "std")},
        val_loss_increases_mean=("val_loss_increases", "mean"),
        W_hh_sparsity_mean=("W_hh_sparsity", "mean"),
        sparsity_mean=("sparsity", "mean"),
    )
    tidy = counts.join(stats).reset_index().sort_values("target", kind="stable")
    for column in stats.columns:
        if column not in tidy:
            tidy[column] = float("nan")

    display = pd.DataFrame(
        {
            "Regularizer": tidy["label"],
            "Target": tidy["target"].map(fmt_fraction),
            "Data": tidy["data"],
            "Test loss": mean_std_column(tidy, "test_loss", 3),
            "Perplexity": mean_std_column(tidy, "test_ppl", 1),
            "Accuracy": mean_std_column(tidy, "test_accuracy", 3),
            **measured_columns(tidy),
        }
    )
    return tidy, display


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(pd.read_csv(smk.input.runs))
    write_table(tidy, display, dict(smk.output), caption(tidy))
