"""Moduli spaces: where hidden neurons live, and the geodesic distance between them.

Every space samples ``n`` positions from a ``torch.Generator`` and computes exact,
vectorised pairwise distances (no Python loop over neurons). Positions are tensors of
shape ``(n, dim)``; distances are ``(n, m)`` tensors in the space's length units
(the paper, "Moduli spaces").

| name     | positions                     | distance                                   |
|----------|-------------------------------|--------------------------------------------|
| torus    | uniform in [0, 10)^2          | periodic Euclidean, period 10              |
| torus6   | uniform in [0, 10)^6          | periodic Euclidean, period 10              |
| klein    | uniform in [0, 10)^2          | flat Klein bottle (quotient metric)        |
| circle   | uniform on S^1 in R^2         | 5 * arccos(<a, b>)                         |
| sphere   | uniform on S^2 in R^3         | 5 * arccos(<a, b>)                         |
| s3       | uniform on S^3 in R^4         | 10 * arccos(<a, b>)                        |
| r3       | uniform in [0, 10)^3          | Euclidean (for learned embeddings)         |
| standard | none                          | coefficients are all 1 (plain L1/L2)       |
| none     | none                          | coefficients are all 0 (no regularizer)    |
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geosparse.spaces import SPACE_SPECS, has_positions

PERIOD = 10.0
"""Side length of the flat torus and Klein bottle fundamental domains."""

_ARCCOS_EPS = 1e-6
"""Margin kept from +-1 when arccos must be differentiable (learned embeddings)."""


@dataclass(frozen=True)
class ModuliSpace:
    """A manifold with a sampler and a pairwise geodesic distance.

    Attributes:
        name: registry key.
        dim: ambient dimension of a position vector (0 for ``standard``/``none``).
        kind: ``"flat"`` (periodic box), ``"klein"``, ``"sphere"``, ``"euclidean"`` or
            ``"constant"`` (no geometry; coefficients are a constant).
        radius: arccos multiplier for spheres (distance = radius * angle).
    """

    name: str
    dim: int
    kind: str
    radius: float = 1.0

    @property
    def has_geometry(self) -> bool:
        return has_positions(self.name)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` positions, shape ``(n, dim)``, float64 on the CPU."""
        if not self.has_geometry:
            raise ValueError(f"moduli space {self.name!r} has no positions to sample")
        if self.kind == "sphere":
            x = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
            return x / x.norm(dim=1, keepdim=True)
        return PERIOD * torch.rand(n, self.dim, generator=generator, dtype=torch.float64)

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        """Map arbitrary points to their representative in the fundamental domain.

        Flat spaces wrap each axis into [0, 10); the Klein bottle applies the glide
        reflection (x, y) -> (x + 10, 10 - y) as often as needed; sphere points are
        normalised. Shape is preserved.
        """
        if self.kind == "flat":
            return torch.remainder(x, PERIOD)
        if self.kind == "klein":
            turns = torch.floor(x[..., 0] / PERIOD)
            px = x[..., 0] - PERIOD * turns
            odd = torch.remainder(turns, 2) == 1
            py = torch.where(odd, PERIOD - x[..., 1], x[..., 1])
            return torch.stack([px, torch.remainder(py, PERIOD)], dim=-1)
        if self.kind == "sphere":
            return x / x.norm(dim=-1, keepdim=True)
        return x

    def distance(self, a: torch.Tensor, b: torch.Tensor, smooth: bool = False) -> torch.Tensor:
        """Pairwise geodesic distances.

        Args:
            a: positions ``(n, dim)``. b: positions ``(m, dim)``.
            smooth: keep arccos inputs inside ``[-1 + 1e-6, 1 - 1e-6]`` so the result is
                differentiable everywhere (learned embeddings); otherwise clamp to [-1, 1].

        Returns:
            ``(n, m)`` distances in the space's units, in float32 or wider whatever the
            autocast: under bfloat16 a dot product of nearby sphere points rounds to 1,
            where arccos has no finite gradient (learned positions).
        """
        low_precision = (torch.float16, torch.bfloat16)
        a, b = (x.float() if x.dtype in low_precision else x for x in (a, b))
        if not torch.amp.is_autocast_available(a.device.type):  # e.g. meta
            return self._distance(a, b, smooth)
        with torch.autocast(a.device.type, enabled=False):
            return self._distance(a, b, smooth)

    def _distance(self, a: torch.Tensor, b: torch.Tensor, smooth: bool) -> torch.Tensor:
        if self.kind == "flat":
            diff = torch.remainder(a[:, None, :] - b[None, :, :], PERIOD)
            diff = torch.minimum(diff, PERIOD - diff)
            return _norm(diff, smooth)
        if self.kind == "klein":
            return _klein_distance(self.canonical(a), self.canonical(b), smooth)
        if self.kind == "sphere":
            a = a / a.norm(dim=1, keepdim=True)
            b = b / b.norm(dim=1, keepdim=True)
            bound = 1.0 - _ARCCOS_EPS if smooth else 1.0
            cos = (a @ b.T).clamp(-bound, bound)
            return self.radius * torch.arccos(cos)
        if self.kind == "euclidean":
            return _norm(a[:, None, :] - b[None, :, :], smooth)
        raise ValueError(f"moduli space {self.name!r} has no distance")


def _norm(diff: torch.Tensor, smooth: bool) -> torch.Tensor:
    """Euclidean norm over the last axis; ``smooth`` avoids the NaN gradient at 0."""
    squared = (diff * diff).sum(-1)
    if smooth:
        return torch.sqrt(squared + 1e-12)
    return torch.sqrt(squared)


# Images of b that can be nearest to a when both lie in [0, 10)^2: glide reflections
# g^m for m in {-1, 0, 1} (x + 10 m, y reflected for odd m) composed with vertical
# translations by 10 n for n in {-1, 0, 1}. |m| >= 2 is never nearer than m - 2 sign(m),
# which has the same y-parity and a smaller x offset.
_KLEIN_SHIFTS = [(m, n) for m in (-1, 0, 1) for n in (-1, 0, 1)]


def _klein_distance(a: torch.Tensor, b: torch.Tensor, smooth: bool) -> torch.Tensor:
    """Flat Klein bottle distance between canonical points ``a (n, 2)``, ``b (m, 2)``."""
    ax, ay = a[:, 0, None], a[:, 1, None]
    bx, by = b[None, :, 0], b[None, :, 1]
    best = None
    for m, n in _KLEIN_SHIFTS:
        image_x = bx + PERIOD * m
        image_y = (PERIOD - by if m % 2 else by) + PERIOD * n
        squared = (ax - image_x) ** 2 + (ay - image_y) ** 2
        best = squared if best is None else torch.minimum(best, squared)
    return torch.sqrt(best + 1e-12) if smooth else torch.sqrt(best)


SPACES: dict[str, ModuliSpace] = {name: ModuliSpace(*spec) for name, spec in SPACE_SPECS.items()}
"""The registry (``geosparse.spaces.SPACE_SPECS``, with geometry)."""


def get_space(name: str) -> ModuliSpace:
    """Look up a moduli space by name; unknown names raise with the allowed values."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown moduli space {name!r}; allowed values: {sorted(SPACES)}") from None


def sample_positions(space: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """Sample ``n`` positions ``(n, dim)`` on ``space`` from ``generator``."""
    return get_space(space).sample(n, generator)


def pairwise_distances(space: str, positions: torch.Tensor) -> torch.Tensor:
    """All-pairs distances ``(n, n)`` between ``positions`` ``(n, dim)`` on ``space``."""
    return get_space(space).distance(positions, positions)
