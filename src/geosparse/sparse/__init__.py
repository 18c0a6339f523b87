"""Real sparse inference for pruned navigation RNNs (CPU, ``torch.sparse``).

Training keeps pruned weights as exact zeros inside dense matrices, so a pruned model is
no faster than a dense one. ``SparseNavigationRNN`` stores the pruned matrices in a
sparse layout and runs the same Elman ReLU RNN with sparse kernels:

    h_0     = encoder @ init_code                      (encoder: Ng x Np)
    h_t     = relu(W_hh @ h_{t-1} + W_ih @ v_t)         (W_hh: Ng x Ng, W_ih: Ng x 2)
    logit_t = decoder @ h_t                             (decoder: Np x Ng)

Modules: ``formats`` (the names: layouts, orders, the inference formats), ``layouts``
(one matrix as dense / CSR / BSR, bytes, block densities), ``ordering`` (geometry
order), ``model`` (``SparseNavigationRNN`` and its file), ``export`` (finished runs ->
files; the only module that reads runs).

Layouts: ``dense``; ``csr`` (``torch.sparse_csr`` with int32 indices, MKL kernels on
CPU); ``bsr`` (``torch.sparse_bsr``, b x b dense blocks, int32 indices). ``W_hh`` gets
the requested layout; ``encoder`` and ``decoder`` become CSR only where they are sparse
enough to pay (density <= ``IO_MAX_DENSITY``); ``W_ih`` (Ng x 2) always stays dense.

Geometry ordering: hidden units are renumbered by their moduli positions
(``geometry_order``: recursive median bisection of the fundamental domain, angle order on
the circle) so that a geometrically local mask becomes near-banded / blocky, which is what
a block-sparse kernel needs. The permutation is exact: rows and columns of ``W_hh``, rows
of ``W_ih`` and ``encoder``, columns of ``decoder`` are permuted together, so the logits
are unchanged; only the hidden state is renumbered (``h_new[:, i] = h_old[:, perm[i]]``).

Exported files (``geosparse export``) are ``torch.save`` of plain tensors, strings and
ints (``load_sparse`` reads them with ``weights_only=True``). On disk, CSR/BSR column
indices are stored as int16 when the matrix has at most 32768 columns (int32 in memory).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "export": ("export_run",),
    "formats": ("BLOCKSIZES", "EXPORT_LAYOUTS", "INFERENCE_FORMATS", "LAYOUTS", "ORDERS", "SPARSE_INFERENCE_FORMATS"),
    "layouts": ("block_densities", "block_density", "layout_of", "nbytes", "stored_nbytes", "to_layout"),
    "model": ("IO_MAX_DENSITY", "NAMES", "SparseNavigationRNN", "load_sparse", "save_sparse"),
    "ordering": ("geometry_order", "permute_weights"),
}
"""Public name -> submodule, imported on first use (``geosparse.sparse.formats`` alone
needs no torch: the CLI's choices and the workflow's tables read it)."""
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'geosparse.sparse' has no attribute {name!r}")
    return getattr(importlib.import_module(f"geosparse.sparse.{_WHERE[name]}"), name)
