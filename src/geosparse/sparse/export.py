"""Finished navigation runs as sparse models: ``geosparse export``."""

from __future__ import annotations

from pathlib import Path

from geosparse.config import InputError
from geosparse.runs import load_finished
from geosparse.sparse.formats import EXPORT_LAYOUTS, ORDERS
from geosparse.sparse.layouts import block_densities
from geosparse.sparse.model import SparseNavigationRNN, save_sparse


def export_run(
    run_dir: str | Path, out: str | Path, layout: str = "csr", order: str = "none", blocksize: int = 32
) -> dict:
    """Export the final model of ``run_dir`` to ``out``; returns a summary dict."""
    if layout not in EXPORT_LAYOUTS:
        raise InputError(f"unknown format {layout!r}; allowed values: {list(EXPORT_LAYOUTS)}")
    if order not in ORDERS:
        raise InputError(f"unknown order {order!r}; allowed values: {list(ORDERS)}")
    if blocksize < 1:
        raise InputError(f"blocksize must be >= 1, got {blocksize}")
    finished = load_finished(run_dir, task="navigation")
    run, masks = finished.run, finished.masks
    reg = run.regularizer
    if order == "geometry" and getattr(reg, "positions", None) is None:
        raise InputError(f"run {run_dir} has no moduli positions (space {reg.space.name!r}); use --order none")
    n_hidden = run.model.prunable()["W_hh"].shape[0]
    if layout == "bsr" and n_hidden % blocksize:
        raise InputError(
            f"--format bsr needs a --blocksize that divides Ng = {n_hidden}, not {blocksize}; "
            "choose another --blocksize or --format csr"
        )
    info = {
        "run": str(run_dir),
        "seed": run.seed,
        "space": reg.space.name,
        "permute": bool(reg.permute),
        "order": order,
        "blocksize": blocksize,
    }
    model = SparseNavigationRNN.from_run(run, masks, layout, order, blocksize, info=info)
    save_sparse(model, out)
    weights = run.model.prunable()
    w_hh = (weights["W_hh"].detach() * masks.get("W_hh", True)).float()
    return {
        "out": str(out),
        "layouts": model.layouts(),
        "W_hh_density": float((w_hh != 0).float().mean()),
        "bytes_dense": sum(w.numel() * 4 for w in weights.values()),
        "bytes_memory": sum(model.nbytes().values()),
        "bytes_stored": sum(model.stored_nbytes().values()),
        "block_density": block_densities(w_hh, model.permutation),
    }
