"""Connectivity structure of a trained W_hh against the neurons' moduli positions.

``locality``: the mean moduli distance between the neurons a surviving (non-zero)
off-diagonal weight connects, divided by the same mean over every off-diagonal pair (what
a random mask of equal density gives in expectation). Below 1: surviving weights
connect neurons that are near each other on the moduli space; about 1: no relation.
``ordered_magnitude``: |W_hh| with rows and columns in ``geometry_order``, averaged over
square blocks, so a local mask shows as a band along the diagonal.

A run without positions (``standard`` / ``none`` space: L1, no regularizer) is measured
against ``reference_positions``: the torus positions a torus run of the same seed gets,
which its weights never saw (the control value, about 1).
"""

from __future__ import annotations

import torch

from geosparse.moduli import ModuliSpace, get_space
from geosparse.regularizer import ModuliRegularizer
from geosparse.runio import derive_seed
from geosparse.sparse.ordering import geometry_order

REFERENCE_SPACE = "torus"
"""Space of the reference positions of runs without their own."""


def reference_positions(n: int, seed: int) -> torch.Tensor:
    """``(n, 2)`` torus positions of a torus run with this run ``seed`` (same draw)."""
    return ModuliRegularizer(n, REFERENCE_SPACE, seed=derive_seed(seed, "moduli")).positions


def positions_of(regularizer: ModuliRegularizer, seed: int) -> tuple[torch.Tensor, ModuliSpace, bool]:
    """``(positions (n, dim), space, own)``: the run's positions, or the reference ones
    (``own`` False) when its space has none."""
    positions = getattr(regularizer, "positions", None)
    if positions is not None:
        return positions.detach(), regularizer.space, True
    return reference_positions(regularizer.n, seed), get_space(REFERENCE_SPACE), False


def locality(weight: torch.Tensor, positions: torch.Tensor, space: ModuliSpace) -> float:
    """Mean distance of surviving off-diagonal weights / mean distance of all off-diagonal
    pairs (``weight (n, n)``, ``positions (n, dim)``); NaN when no weight survives."""
    n = weight.shape[0]
    distance = space.distance(positions, positions).double()
    off = ~torch.eye(n, dtype=torch.bool)
    kept = (weight != 0) & off
    if not kept.any():
        return float("nan")
    return float(distance[kept].mean() / distance[off].mean())


def ordered_magnitude(weight: torch.Tensor, positions: torch.Tensor, space: ModuliSpace, size: int) -> torch.Tensor:
    """``(size, size)``: |weight| in geometry order, each entry the mean over one block of
    ``n / size`` x ``n / size`` weights (``size`` must divide n)."""
    n = weight.shape[0]
    if n % size:
        raise ValueError(f"heatmap size {size} must divide Ng = {n}")
    perm = geometry_order(positions, space)
    ordered = weight.detach().abs().double()[perm][:, perm]
    block = n // size
    return ordered.view(size, block, size, block).mean(dim=(1, 3))
