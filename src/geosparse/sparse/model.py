"""``SparseNavigationRNN``: the inference-only navigation RNN on sparse matrices, and its
export file (plain tensors, ``torch.load(weights_only=True)``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from geosparse.moduli import ModuliSpace
from geosparse.runio import atomic_write, load_checkpoint
from geosparse.sparse.formats import LAYOUTS, ORDERS
from geosparse.sparse.layouts import layout_of, nbytes, pack, stored_nbytes, to_layout, unpack
from geosparse.sparse.ordering import geometry_order, permute_weights

NAMES = ("encoder", "W_ih", "W_hh", "decoder")
IO_MAX_DENSITY = 0.25
"""Encoder / decoder are stored as CSR only at or below this fraction of non-zeros."""
EXPORT_VERSION = 1


def _use_mv(weight: torch.Tensor, batch: int) -> bool:
    """Matrix-vector kernels at batch 1, except for BSR (torch's CPU BSR mv is slower
    than its mm with one column)."""
    return batch == 1 and weight.layout != torch.sparse_bsr


def _mm(weight: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``weight @ cols`` for ``cols`` of shape ``(C, B)``."""
    if _use_mv(weight, cols.shape[1]):
        return torch.mv(weight, cols[:, 0]).unsqueeze(1)
    return torch.mm(weight, cols)


class SparseNavigationRNN:
    """Inference-only navigation RNN with sparse weight matrices.

    Args:
        weights: ``encoder (Ng, Np)``, ``W_ih (Ng, 2)``, ``W_hh (Ng, Ng)``,
            ``decoder (Np, Ng)``, each dense or sparse (CSR/BSR), float32, on the CPU.
        permutation: ``perm`` (new -> old) applied to the hidden units, or None.
        info: provenance (plain JSON-able values) kept in exported files.
    """

    def __init__(
        self, weights: Mapping[str, torch.Tensor], permutation: torch.Tensor | None = None, info: Mapping | None = None
    ) -> None:
        missing = set(NAMES) - set(weights)
        if missing:
            raise ValueError(f"missing weights {sorted(missing)}")
        self.weights = {name: weights[name] for name in NAMES}
        ng, np_ = self.weights["encoder"].shape
        expected = {"encoder": (ng, np_), "W_ih": (ng, 2), "W_hh": (ng, ng), "decoder": (np_, ng)}
        for name, shape in expected.items():
            if tuple(self.weights[name].shape) != shape:
                raise ValueError(f"{name} has shape {tuple(self.weights[name].shape)}, expected {shape}")
        if layout_of(self.weights["W_ih"]) != "dense":
            raise ValueError("W_ih must be dense")
        self.n_hidden, self.n_place_cells = ng, np_
        self.permutation = permutation
        self.info = dict(info or {})
        self._w_ih_t = self.weights["W_ih"].t().contiguous()  # (2, Ng)

    # -- construction
    @classmethod
    def from_dense(
        cls,
        weights: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor] | None = None,
        layout: str = "csr",
        order: str = "none",
        positions: torch.Tensor | None = None,
        space: str | ModuliSpace | None = None,
        blocksize: int = 32,
        io_max_density: float = IO_MAX_DENSITY,
        info: Mapping | None = None,
    ) -> SparseNavigationRNN:
        """Sparse model from dense weights (pruned weights zero, or zeroed by ``masks``).

        ``layout`` is W_hh's layout; ``order="geometry"`` needs ``positions`` and
        ``space`` (``geometry_order``).
        """
        if layout not in LAYOUTS:
            raise ValueError(f"unknown format {layout!r}; allowed values: {list(LAYOUTS)}")
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; allowed values: {list(ORDERS)}")
        dense = {name: weights[name].detach().float().cpu() for name in NAMES}
        for name, mask in (masks or {}).items():
            dense[name] = dense[name] * mask.to(torch.bool).cpu()
        perm = None
        if order == "geometry":
            if positions is None or space is None:
                raise ValueError("order 'geometry' needs the hidden units' moduli positions")
            perm = geometry_order(positions, space)
            dense = permute_weights(dense, perm)
        out = {"W_ih": dense["W_ih"].contiguous(), "W_hh": to_layout(dense["W_hh"], layout, blocksize)}
        for name in ("encoder", "decoder"):
            density = float((dense[name] != 0).float().mean())
            out[name] = to_layout(dense[name], "csr" if density <= io_max_density else "dense")
        return cls(out, perm, info)

    @classmethod
    def from_run(
        cls,
        run,
        masks: Mapping[str, torch.Tensor],
        layout: str = "csr",
        order: str = "none",
        blocksize: int = 32,
        io_max_density: float = IO_MAX_DENSITY,
        info: Mapping | None = None,
    ) -> SparseNavigationRNN:
        """Sparse model of a loaded navigation ``Run`` (``geosparse.runs.load_finished``): its prunable weights,
        ``masks`` and, for ``order="geometry"``, its regularizer's moduli positions."""
        weights = {name: w.detach() for name, w in run.model.prunable().items()}
        reg = run.regularizer
        return cls.from_dense(
            weights, masks, layout, order, getattr(reg, "positions", None), reg.space, blocksize, io_max_density, info
        )

    # -- inference
    def init_hidden(self, init_code: torch.Tensor) -> torch.Tensor:
        """``h_0 (B, Ng)`` from place codes ``init_code (B, Np)``."""
        return _mm(self.weights["encoder"], init_code.t().contiguous()).t()

    def step(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One recurrent step: ``relu(h @ W_hh^T + x @ W_ih^T)``; h ``(B, Ng)``, x ``(B, 2)``."""
        w_hh = self.weights["W_hh"]
        drive = x @ self._w_ih_t  # (B, Ng)
        if w_hh.layout == torch.strided:
            return torch.addmm(drive, h, w_hh.t()).relu_()
        if _use_mv(w_hh, h.shape[0]):
            return torch.addmv(drive[0], w_hh, h[0]).relu_().unsqueeze(0)
        return (torch.mm(w_hh, h.t().contiguous()).t() + drive).relu_()

    def sequence(self, velocity: torch.Tensor, init_code: torch.Tensor) -> torch.Tensor:
        """Logits ``(T, B, Np)`` from velocity ``(T, B, 2)`` and ``init_code (B, Np)``.

        The hidden state is kept column-major (``(Ng, B)``) so that every step is one
        sparse matrix times a contiguous dense block; the read-out runs once over all
        ``T * B`` states.
        """
        t_len, batch, _ = velocity.shape
        w_hh, ng = self.weights["W_hh"], self.n_hidden
        drive = torch.matmul(velocity, self._w_ih_t).transpose(1, 2).contiguous()  # (T, Ng, B)
        hidden = torch.empty(t_len, ng, batch, dtype=drive.dtype)
        h = _mm(self.weights["encoder"], init_code.t().contiguous())  # (Ng, B)
        for t in range(t_len):
            if _use_mv(w_hh, batch):
                torch.addmv(drive[t, :, 0], w_hh, h[:, 0], out=hidden[t, :, 0])
            else:
                torch.addmm(drive[t], w_hh, h, out=hidden[t])
            h = hidden[t].relu_()
        decoder = self.weights["decoder"]
        if decoder.layout == torch.strided:
            return torch.matmul(hidden.transpose(1, 2), decoder.t())
        flat = hidden.permute(1, 0, 2).reshape(ng, t_len * batch)
        return torch.mm(decoder, flat).view(-1, t_len, batch).permute(1, 2, 0)

    __call__ = sequence

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, Np)`` of hidden states ``h (B, Ng)``."""
        return _mm(self.weights["decoder"], h.t().contiguous()).t()

    # -- bookkeeping
    def layouts(self) -> dict[str, str]:
        return {name: layout_of(w) for name, w in self.weights.items()}

    def nbytes(self) -> dict[str, int]:
        """In-memory bytes (values + indices) per matrix."""
        return {name: nbytes(w) for name, w in self.weights.items()}

    def stored_nbytes(self) -> dict[str, int]:
        """Bytes per matrix as exported (int16 column indices where they fit)."""
        return {name: stored_nbytes(w) for name, w in self.weights.items()}

    def state_dict(self) -> dict:
        """Plain tensors, strings and ints (``torch.load(weights_only=True)`` safe)."""
        return {
            "format": "geosparse-sparse-navigation",
            "version": EXPORT_VERSION,
            "n_hidden": self.n_hidden,
            "n_place_cells": self.n_place_cells,
            "permutation": self.permutation,
            "weights": {name: pack(w) for name, w in self.weights.items()},
            "info_json": json.dumps(self.info, sort_keys=True),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> SparseNavigationRNN:
        if state.get("format") != "geosparse-sparse-navigation":
            raise ValueError("not a geosparse sparse navigation model")
        if state.get("version") != EXPORT_VERSION:
            raise ValueError(f"unsupported sparse model version {state.get('version')!r}")
        weights = {name: unpack(state["weights"][name]) for name in NAMES}
        return cls(weights, state["permutation"], json.loads(state["info_json"]))


def save_sparse(model: SparseNavigationRNN, path: str | Path) -> None:
    """``torch.save`` the model's plain-tensor ``state_dict`` atomically."""
    state = model.state_dict()
    atomic_write(Path(path), lambda fh: torch.save(state, fh))


def load_sparse(path: str | Path) -> SparseNavigationRNN:
    """Load an exported model (``torch.load(weights_only=True)``)."""
    return SparseNavigationRNN.from_state_dict(load_checkpoint(path))
