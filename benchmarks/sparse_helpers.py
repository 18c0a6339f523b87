"""Benchmark-only helpers: synthetic moduli masks (what a regularized model converges
to, without training) and a Hilbert-curve order to compare ``geometry_order`` against."""

from __future__ import annotations

import torch

from geosparse.moduli import ModuliSpace, get_space
from geosparse.regularizer import ModuliRegularizer


def synthetic_mask(
    n: int, density: float, space: str = "torus", permute: bool = False, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``W_hh`` mask a moduli-regularized model converges to (SYNTHETIC, not trained).

    Keeps the ``round(density * n^2)`` entries with the lowest inverted-DoG coefficient
    ``R_ij`` (the cheap annulus around each neuron) of ``ModuliRegularizer(n, space,
    "dog", invert=True, permute=permute, seed=seed)``. With ``permute=True`` ``R`` is the
    permuted control (no geometry). Returns ``(mask (n, n) bool, positions (n, dim))``.
    """
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    reg = ModuliRegularizer(n, space, "dog", invert=True, permute=permute, seed=seed)
    coefficients = reg.coefficients.flatten()
    k = max(1, round(density * n * n))
    keep = torch.zeros(n * n, dtype=torch.bool)
    keep[torch.topk(coefficients, k, largest=False, sorted=False).indices] = True
    return keep.view(n, n), reg.positions.detach().clone()


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
