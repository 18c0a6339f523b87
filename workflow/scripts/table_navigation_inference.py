"""Table: sparse inference of the grid's trained navigation models on the CPU.

Per regularizer and target, over completed seeds: measured W_hh sparsity, 32 x 32 block
density of W_hh before and after geometry ordering, stored bytes of the exported CSR
model against dense float32, the dense latency of one recurrent step at the smallest
batch, the speed-ups over dense of csr / csr-geo / bsr-geo for that step and for a whole
sequence at the largest batch, and the largest relative deviation of any format's logits
from the training model's.

Tidy CSV columns: regularizer, label, target, format, kind, batch, n_runs, n_diverged,
time_ms_mean, speedup_mean, speedup_std, max_rel_error, W_hh_sparsity_mean,
block_density_32_none_mean, block_density_32_geometry_mean, model_bytes_stored_mean,
model_bytes_dense (one row per regularizer, target, format, case and batch).
"""

import pandas as pd
from tables_io import CELL, RUN_COUNTS, fmt_diverged, fmt_fraction, snakemake_job, write_table

from geosparse.sparse.formats import SPARSE_INFERENCE_FORMATS as SPARSE_FORMATS

CAPTION = (
    "Sparse inference of the trained models (CPU, one thread; mean over seeds): W_hh "
    "sparsity, fraction of non-empty 32 x 32 blocks of W_hh in training order and in "
    "geometry order, exported CSR model size against dense float32, dense latency of one "
    "step at the smallest batch, speed-ups over dense (csr / csr-geo / bsr-geo) of that "
    "step and of a whole sequence at the largest batch, largest relative logit deviation "
    "from the training model. Timings share the machine with the rest of the pipeline."
)


def build(inference: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy, display) tables."""
    runs = inference.drop_duplicates("run_id")
    counts = runs.groupby(CELL, sort=False).agg(**RUN_COUNTS)
    done = inference[inference["status"] == "completed"].astype({"batch": int})
    dense_bytes = done[done["format"] == "dense"].groupby(CELL, sort=False)["model_bytes_memory"].first()
    tidy = (
        done.groupby([*CELL, "format", "kind", "batch"], sort=False)
        .agg(
            time_ms_mean=("time_ms", "mean"),
            speedup_mean=("speedup_vs_dense", "mean"),
            speedup_std=("speedup_vs_dense", "std"),
            max_rel_error=("max_rel_error", "max"),
            W_hh_sparsity_mean=("W_hh_sparsity", "mean"),
            block_density_32_none_mean=("block_density_32_none", "mean"),
            block_density_32_geometry_mean=("block_density_32_geometry", "mean"),
            model_bytes_stored_mean=("model_bytes_stored", "mean"),
        )
        .reset_index()
    )
    tidy = tidy.join(counts, on=CELL).join(dense_bytes.rename("model_bytes_dense"), on=CELL)
    tidy = tidy[
        [
            "regularizer",
            "label",
            "target",
            "format",
            "kind",
            "batch",
            "n_runs",
            "n_diverged",
            "time_ms_mean",
            "speedup_mean",
            "speedup_std",
            "max_rel_error",
            "W_hh_sparsity_mean",
            "block_density_32_none_mean",
            "block_density_32_geometry_mean",
            "model_bytes_stored_mean",
            "model_bytes_dense",
        ]
    ]
    return tidy, display_table(tidy, counts.reset_index())


def _speedups(cases: pd.DataFrame, kind: str, batch: int) -> str:
    """``"1.3x / 1.3x / 0.2x"`` for csr / csr-geo / bsr-geo (``-`` where not timed)."""
    chosen = cases[(cases["kind"] == kind) & (cases["batch"] == batch)].set_index("format")["speedup_mean"]
    return " / ".join(f"{chosen[f]:.2f}x" if f in chosen else "-" for f in SPARSE_FORMATS)


def display_table(tidy: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per regularizer and target (every run diverged: dashes)."""
    small, large = (tidy["batch"].min(), tidy["batch"].max()) if not tidy.empty else (None, None)
    rows = []
    for _, run in counts.sort_values("target", kind="stable").iterrows():
        cases = tidy[(tidy["regularizer"] == run["regularizer"]) & (tidy["target"] == run["target"])]
        if cases.empty:
            rows.append({"Regularizer": run["label"], "Target": fmt_fraction(run["target"])})
            continue
        first = cases.iloc[0]
        csr = cases[(cases["format"] == "csr")].iloc[0]
        dense_step = cases[(cases["format"] == "dense") & (cases["kind"] == "step") & (cases["batch"] == small)]
        geometry = first["block_density_32_geometry_mean"]
        rows.append(
            {
                "Regularizer": run["label"],
                "Target": fmt_fraction(run["target"]),
                "W_hh sparsity": fmt_fraction(first["W_hh_sparsity_mean"]),
                "32x32 blocks (none -> geometry)": f"{first['block_density_32_none_mean']:.3f} -> "
                + ("-" if pd.isna(geometry) else f"{geometry:.3f}"),
                "CSR size / dense": f"{csr['model_bytes_stored_mean'] / csr['model_bytes_dense']:.3f}",
                f"dense step B={small} (ms)": f"{dense_step['time_ms_mean'].iloc[0]:.4f}",
                f"step B={small}: csr / csr-geo / bsr-geo": _speedups(cases, "step", small),
                f"sequence B={large}: csr / csr-geo / bsr-geo": _speedups(cases, "sequence", large),
                "max rel. error": f"{cases['max_rel_error'].max():.1e}",
            }
        )
    display = pd.DataFrame(rows).fillna("-")
    counted = counts.sort_values("target", kind="stable")
    display["Diverged"] = fmt_diverged(counted)
    return display


smk = snakemake_job(globals())
if smk is not None:
    tidy, display = build(pd.read_csv(smk.input.inference))
    write_table(tidy, display, dict(smk.output), CAPTION)
