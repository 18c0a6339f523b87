"""The names of sparse formats, in one table: what ``geosparse export`` writes, what
``geosparse benchmark-inference`` and ``benchmarks/sparse_inference.py`` time, and what
the inference table reports."""

from __future__ import annotations

LAYOUTS = ("dense", "csr", "bsr")
"""Storage layouts of one matrix (``to_layout``)."""
ORDERS = ("none", "geometry")
"""Hidden-unit orders: as trained, or by moduli position (``geometry_order``)."""
EXPORT_LAYOUTS = ("csr", "bsr")
"""Layouts ``geosparse export --format`` accepts for ``W_hh``."""
BLOCKSIZES = (16, 32, 64)
"""Block sizes at which block densities are reported."""

INFERENCE_FORMATS: dict[str, tuple[str, str] | None] = {
    "dense": ("dense", "none"),
    "nn.RNN": None,
    "csr": ("csr", "none"),
    "csr-geo": ("csr", "geometry"),
    "bsr-geo": ("bsr", "geometry"),
}
"""Format name -> ``(W_hh layout, order)`` of ``SparseNavigationRNN``; ``nn.RNN`` is the
training model itself. Formats ordered by geometry need moduli positions."""
SPARSE_INFERENCE_FORMATS = tuple(
    name for name, spec in INFERENCE_FORMATS.items() if spec is not None and spec[0] != "dense"
)
"""The formats whose W_hh is a sparse tensor (the speed-up columns of the inference table)."""
