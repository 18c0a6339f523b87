"""Table: connectivity locality and hidden-manifold topology per regularizer and target.

Locality (``geosparse.structure``): mean moduli distance of the surviving W_hh weights
over the mean of all pairs, mean (std) over completed seeds; below 1 = local. Runs
without neuron positions are measured against reference torus positions (marked *).
Long-lived bars (``geosparse.topology``): (H0, H1, H2) of each seed's population point
cloud, with how many seeds show each triple (a torus is (1, 2, 1)).

Tidy CSV columns: regularizer, label, target, n_runs, n_diverged, locality_mean,
locality_std, own_positions, bars (e.g. "(1, 0, 0) x2"), W_hh_sparsity_mean,
sparsity_mean (= W_hh sparsity here).
"""

import pandas as pd
from tables_io import CELL, RUN_COUNTS, fmt_diverged, fmt_fraction, mean_std_column, snakemake_job, write_table

CAPTION = (
    "Connectivity and hidden-manifold structure of the sparse models: locality of W_hh "
    "(mean moduli distance of surviving weights / mean over all pairs, mean (std) over "
    "seeds; < 1 = local; * = no positions of its own, measured on reference torus "
    "positions) and long-lived persistent-homology bars (H0, H1, H2) of the population "
    "activity over position, with the number of seeds showing them (torus = (1, 2, 1))."
)


def _bars(group: pd.DataFrame) -> str:
    triples = group.dropna(subset=["h0"]).apply(lambda r: f"({int(r.h0)}, {int(r.h1)}, {int(r.h2)})", axis=1)
    return "; ".join(f"{t} x{n}" for t, n in triples.value_counts(sort=True).items()) or "-"


def build(structure: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables."""
    data = structure.assign(sparsity=structure["W_hh_sparsity"])
    done = data[data["status"] == "completed"]
    counts = data.groupby(CELL, sort=False).agg(**RUN_COUNTS)
    stats = done.groupby(CELL, sort=False).agg(
        locality_mean=("locality", "mean"),
        locality_std=("locality", "std"),
        own_positions=("own_positions", "all"),
        W_hh_sparsity_mean=("W_hh_sparsity", "mean"),
        sparsity_mean=("sparsity", "mean"),
    )
    tidy = counts.join(stats)
    if len(done):  # no completed run (all diverged): no bars, the column stays empty
        tidy = tidy.join(done.groupby(CELL, sort=False)[["h0", "h1", "h2"]].apply(_bars).rename("bars"))
    tidy = tidy.reindex(columns=tidy.columns.union(["bars"], sort=False))
    tidy = tidy.reset_index().sort_values("target", kind="stable")
    tidy = tidy[
        [
            *CELL,
            *RUN_COUNTS,
            "locality_mean",
            "locality_std",
            "own_positions",
            "bars",
            "W_hh_sparsity_mean",
            "sparsity_mean",
        ]
    ]
    display = pd.DataFrame(
        {
            "Regularizer": [
                f"{label}{'' if own is True else ' *'}"
                for label, own in zip(tidy["label"], tidy["own_positions"], strict=True)
            ],
            "Target": tidy["target"].map(fmt_fraction),
            "Locality": mean_std_column(tidy, "locality", 2),
            "Long-lived bars (H0, H1, H2)": tidy["bars"].fillna("-"),
            "W_hh sparsity": tidy["W_hh_sparsity_mean"].map(lambda v: "-" if pd.isna(v) else f"{100 * v:.1f} %"),
            "Diverged": fmt_diverged(tidy),
        }
    )
    return tidy, display


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(pd.read_csv(smk.input[0]))
    write_table(tidy, display, dict(smk.output), CAPTION)
