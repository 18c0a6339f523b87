"""Real sparse inference for pruned navigation RNNs (CPU, ``torch.sparse``).

Training keeps pruned weights as exact zeros inside dense matrices, so a pruned model is
no faster than a dense one. ``SparseNavigationRNN`` stores the pruned matrices in a
sparse layout and runs the same Elman ReLU RNN with sparse kernels:

    h_0     = encoder @ init_code                      (encoder: Ng x Np)
    h_t     = relu(W_hh @ h_{t-1} + W_ih @ v_t)         (W_hh: Ng x Ng, W_ih: Ng x 2)
    logit_t = decoder @ h_t                             (decoder: Np x Ng)

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

import contextlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch

from geosparse.moduli import ModuliSpace, get_space
from geosparse.runio import _atomic, load_checkpoint

LAYOUTS = ("dense", "csr", "bsr")
FORMATS = ("csr", "bsr")
"""Layouts ``geosparse export --format`` accepts for ``W_hh``."""
ORDERS = ("none", "geometry")
NAMES = ("encoder", "W_ih", "W_hh", "decoder")
BLOCKSIZES = (16, 32, 64)
"""Block sizes at which block densities are reported."""
IO_MAX_DENSITY = 0.25
"""Encoder / decoder are stored as CSR only at or below this fraction of non-zeros."""
EXPORT_VERSION = 1
_INT16_MAX_COLUMNS = 2**15


# --------------------------------------------------------------------------- masks, blocks
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
        str(b): {"none": block_density(matrix, b),
                 **({} if ordered is None else {"geometry": block_density(ordered, b)})}
        for b in blocksizes
    }


def synthetic_mask(
    n: int, density: float, space: str = "torus", permute: bool = False, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``W_hh`` mask a moduli-regularized model converges to (SYNTHETIC, not trained).

    Keeps the ``round(density * n^2)`` entries with the lowest inverted-DoG coefficient
    ``R_ij`` (the cheap annulus around each neuron) of ``ModuliRegularizer(n, space,
    "dog", invert=True, permute=permute, seed=seed)``. With ``permute=True`` ``R`` is the
    permuted control (no geometry). Returns ``(mask (n, n) bool, positions (n, dim))``.
    """
    from geosparse.regularizer import ModuliRegularizer

    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    reg = ModuliRegularizer(n, space, "dog", invert=True, permute=permute, seed=seed)
    coefficients = reg.coefficients.flatten()
    k = max(1, round(density * n * n))
    keep = torch.zeros(n * n, dtype=torch.bool)
    keep[torch.topk(coefficients, k, largest=False, sorted=False).indices] = True
    return keep.view(n, n), reg.positions.detach().clone()


# --------------------------------------------------------------------------- orderings
def geometry_order(positions: torch.Tensor, space: str | ModuliSpace, leaf: int = 4) -> torch.Tensor:
    """Permutation ``perm`` (``new -> old``) renumbering units by moduli position.

    circle: angle order. Every other space: recursive median bisection (a k-d tree)
    of the canonical positions (torus / Klein: the [0, 10)^d fundamental domain; spheres:
    ambient coordinates), splitting along the widest axis, so that every aligned run of
    ``2^k`` consecutive units (for N a power of two) is a compact cell of the domain.
    """
    space = get_space(space) if isinstance(space, str) else space
    if not space.has_geometry:
        raise ValueError(f"moduli space {space.name!r} has no positions to order by")
    x = space.canonical(positions.detach().double().cpu())
    if space.kind == "sphere" and space.dim == 2:  # circle
        return torch.argsort(torch.atan2(x[:, 1], x[:, 0]), stable=True)
    out: list[torch.Tensor] = []

    def split(idx: torch.Tensor) -> None:
        pts = x[idx]
        axis = int(torch.argmax(pts.amax(0) - pts.amin(0)))
        idx = idx[torch.argsort(pts[:, axis], stable=True)]
        if idx.numel() <= leaf:
            out.append(idx)
            return
        half = idx.numel() // 2
        split(idx[:half])
        split(idx[half:])

    split(torch.arange(x.shape[0]))
    return torch.cat(out)


def hilbert_order(positions: torch.Tensor, space: str | ModuliSpace, bits: int = 10) -> torch.Tensor:
    """Permutation (``new -> old``) along a Hilbert curve over a 2-D fundamental domain."""
    space = get_space(space) if isinstance(space, str) else space
    if space.kind not in ("flat", "klein") or space.dim != 2:
        raise ValueError(f"hilbert_order needs a 2-D flat or Klein space, not {space.name!r}")
    x = space.canonical(positions.detach().double().cpu())
    side = 2**bits
    cells = (x / 10.0 * side).long().clamp(0, side - 1)
    xi, yi = cells[:, 0].clone(), cells[:, 1].clone()
    d = torch.zeros_like(xi)
    s = side // 2
    while s > 0:  # the classic xy -> d conversion, vectorised over points
        rx = ((xi & s) > 0).long()
        ry = ((yi & s) > 0).long()
        d += s * s * ((3 * rx) ^ ry)
        flip = ry == 0
        swap_x = torch.where(flip & (rx == 1), side - 1 - xi, xi)
        swap_y = torch.where(flip & (rx == 1), side - 1 - yi, yi)
        xi, yi = torch.where(flip, swap_y, swap_x), torch.where(flip, swap_x, swap_y)
        s //= 2
    return torch.argsort(d, stable=True)


def permute_weights(weights: Mapping[str, torch.Tensor], perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Renumber hidden units: ``W_hh[perm][:, perm]``, ``W_ih[perm]``, ``encoder[perm]``,
    ``decoder[:, perm]``. The network's logits are unchanged."""
    n = weights["W_hh"].shape[0]
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"perm is not a permutation of range({n})")
    return {
        "encoder": weights["encoder"][perm],
        "W_ih": weights["W_ih"][perm],
        "W_hh": weights["W_hh"][perm][:, perm],
        "decoder": weights["decoder"][:, perm],
    }


# --------------------------------------------------------------------------- layouts
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


def _compressed(layout: str, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
                shape: Sequence[int], check: bool) -> torch.Tensor:
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


def _pack(weight: torch.Tensor) -> dict:
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


def _unpack(entry: Mapping) -> torch.Tensor:
    layout = entry.get("layout")
    if layout == "dense":
        return entry["values"].float().contiguous()
    if layout not in ("csr", "bsr"):
        raise ValueError(f"unknown stored layout {layout!r}")
    return _compressed(layout, entry["crow_indices"], entry["col_indices"], entry["values"], entry["shape"],
                       check=True)


def stored_nbytes(weight: torch.Tensor) -> int:
    """Bytes of ``weight`` as ``_pack`` stores it (int16 column indices when they fit)."""
    return sum(t.numel() * t.element_size() for t in _pack(weight).values() if isinstance(t, torch.Tensor))


# --------------------------------------------------------------------------- the model
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

    def __init__(self, weights: Mapping[str, torch.Tensor], permutation: torch.Tensor | None = None,
                 info: Mapping | None = None) -> None:
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
        """Sparse model of a loaded navigation ``Run`` (``load_run``): its prunable weights,
        ``masks`` and, for ``order="geometry"``, its regularizer's moduli positions."""
        weights = {name: w.detach() for name, w in run.model.prunable().items()}
        reg = run.regularizer
        return cls.from_dense(weights, masks, layout, order, getattr(reg, "positions", None), reg.space,
                              blocksize, io_max_density, info)

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
            "weights": {name: _pack(w) for name, w in self.weights.items()},
            "info_json": json.dumps(self.info, sort_keys=True),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> SparseNavigationRNN:
        if state.get("format") != "geosparse-sparse-navigation":
            raise ValueError("not a geosparse sparse navigation model")
        if state.get("version") != EXPORT_VERSION:
            raise ValueError(f"unsupported sparse model version {state.get('version')!r}")
        weights = {name: _unpack(state["weights"][name]) for name in NAMES}
        return cls(weights, state["permutation"], json.loads(state["info_json"]))


def save_sparse(model: SparseNavigationRNN, path: str | Path) -> None:
    """``torch.save`` the model's plain-tensor ``state_dict`` atomically."""
    state = model.state_dict()
    _atomic(Path(path), lambda fh: torch.save(state, fh))


def load_sparse(path: str | Path) -> SparseNavigationRNN:
    """Load an exported model (``torch.load(weights_only=True)``)."""
    return SparseNavigationRNN.from_state_dict(load_checkpoint(path))


# --------------------------------------------------------------------------- runs
def load_run(run_dir: str | Path):
    """``(navigation Run with the run's final weights, masks and learned positions, masks)``
    of a finished navigation run (``geosparse.runs.load_finished``)."""
    from geosparse.runs import load_finished

    finished = load_finished(run_dir, task="navigation")
    return finished.run, finished.masks


def export_run(
    run_dir: str | Path, out: str | Path, layout: str = "csr", order: str = "none", blocksize: int = 32
) -> dict:
    """Export the final model of ``run_dir`` to ``out``; returns a summary dict."""
    if layout not in FORMATS:
        raise ValueError(f"unknown format {layout!r}; allowed values: {list(FORMATS)}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; allowed values: {list(ORDERS)}")
    if blocksize < 1:
        raise ValueError(f"blocksize must be >= 1, got {blocksize}")
    run, masks = load_run(run_dir)
    reg = run.regularizer
    if order == "geometry" and getattr(reg, "positions", None) is None:
        raise ValueError(
            f"run {run_dir} has no moduli positions (space {reg.space.name!r}); use --order none"
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
