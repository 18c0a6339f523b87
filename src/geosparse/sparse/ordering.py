"""Renumbering hidden units by their moduli positions, so that a geometrically local
mask becomes near-banded / blocky (what a block-sparse kernel needs)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from geosparse.moduli import ModuliSpace, get_space


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
