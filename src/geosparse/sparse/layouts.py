"""Dense, CSR and BSR storage of one matrix: conversion (int32 indices), bytes in memory
and on disk (int16 column indices where they fit), and block densities."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence

import torch

from geosparse.sparse.formats import BLOCKSIZES, LAYOUTS

_INT16_MAX_COLUMNS = 2**15


def block_density(mask: torch.Tensor, blocksize: int) -> float:
    """Fraction of the ``blocksize x blocksize`` tiles of ``mask`` holding a non-zero.

    The matrix is tiled from the top-left corner; ragged edge tiles count as tiles.
    """
    if blocksize < 1:
        raise ValueError(f"blocksize must be >= 1, got {blocksize}")
    if mask.dim() != 2:
        raise ValueError(f"mask must be 2-D, got shape {tuple(mask.shape)}")
    nonzero = mask != 0
    rows, cols = nonzero.shape
    if rows == 0 or cols == 0:
        return 0.0
    r, c = -(-rows // blocksize), -(-cols // blocksize)
    padded = torch.zeros(r * blocksize, c * blocksize, dtype=torch.bool)
    padded[:rows, :cols] = nonzero
    occupied = padded.view(r, blocksize, c, blocksize).any(dim=3).any(dim=1)
    return float(occupied.float().mean())


def block_densities(
    matrix: torch.Tensor, perm: torch.Tensor | None, blocksizes: Sequence[int] = BLOCKSIZES
) -> dict[str, dict[str, float]]:
    """``{str(b): {"none": ..., "geometry": ...}}``: ``block_density`` of ``matrix`` as it
    is and with rows and columns renumbered by ``perm`` (omitted when ``perm`` is None)."""
    ordered = None if perm is None else matrix[perm][:, perm]
    return {
        str(b): {
            "none": block_density(matrix, b),
            **({} if ordered is None else {"geometry": block_density(ordered, b)}),
        }
        for b in blocksizes
    }


def to_layout(weight: torch.Tensor, layout: str, blocksize: int = 32) -> torch.Tensor:
    """``weight`` (2-D, dense) in ``layout`` (``dense``/``csr``/``bsr``), int32 indices."""
    weight = weight.detach().float().contiguous()
    if layout == "dense":
        return weight
    if layout not in ("csr", "bsr"):
        raise ValueError(f"unknown layout {layout!r}; allowed values: {list(LAYOUTS)}")
    if layout == "bsr" and (weight.shape[0] % blocksize or weight.shape[1] % blocksize):
        raise ValueError(
            f"bsr needs the matrix shape {tuple(weight.shape)} to be divisible by the "
            f"blocksize {blocksize}; choose another --blocksize or --format csr"
        )
    with _sparse_beta_silenced():
        c = weight.to_sparse_csr() if layout == "csr" else weight.to_sparse_bsr((blocksize, blocksize))
    return _compressed(layout, c.crow_indices(), c.col_indices(), c.values(), weight.shape, check=False)


def _compressed(
    layout: str, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: Sequence[int], check: bool
) -> torch.Tensor:
    """A CSR / BSR tensor with int32 indices (``check``: verify the invariants, so that a
    corrupt file raises instead of crashing a kernel); torch's beta warning silenced."""
    build = torch.sparse_csr_tensor if layout == "csr" else torch.sparse_bsr_tensor
    with _sparse_beta_silenced():
        return build(crow.int(), col.int(), values.float(), tuple(shape), check_invariants=check)


@contextlib.contextmanager
def _sparse_beta_silenced() -> Iterator[None]:
    """Silence torch's "Sparse CSR/BSR tensor support is in beta" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse (CSR|BSR) tensor support is in beta", category=UserWarning)
        yield


def layout_of(weight: torch.Tensor) -> str:
    return {torch.strided: "dense", torch.sparse_csr: "csr", torch.sparse_bsr: "bsr"}[weight.layout]


def nbytes(weight: torch.Tensor) -> int:
    """Bytes of the tensors a kernel reads for ``weight`` (values + indices), in memory."""
    if weight.layout == torch.strided:
        return weight.numel() * weight.element_size()
    parts = (weight.crow_indices(), weight.col_indices(), weight.values())
    return sum(p.numel() * p.element_size() for p in parts)


def pack(weight: torch.Tensor) -> dict:
    """Plain-tensor form of ``weight`` for ``torch.save`` (int16 column indices if they fit)."""
    layout = layout_of(weight)
    if layout == "dense":
        return {"layout": "dense", "values": weight.contiguous()}
    col = weight.col_indices()
    small = col.numel() == 0 or int(col.max()) < _INT16_MAX_COLUMNS
    return {
        "layout": layout,
        "shape": list(weight.shape),
        "crow_indices": weight.crow_indices().int(),
        "col_indices": col.short() if small else col.int(),
        "values": weight.values().contiguous(),
    }


def unpack(entry: Mapping) -> torch.Tensor:
    layout = entry.get("layout")
    if layout == "dense":
        return entry["values"].float().contiguous()
    if layout not in ("csr", "bsr"):
        raise ValueError(f"unknown stored layout {layout!r}")
    return _compressed(layout, entry["crow_indices"], entry["col_indices"], entry["values"], entry["shape"], check=True)


def stored_nbytes(weight: torch.Tensor) -> int:
    """Bytes of ``weight`` as ``pack`` stores it (int16 column indices when they fit)."""
    return sum(t.numel() * t.element_size() for t in pack(weight).values() if isinstance(t, torch.Tensor))
