"""The moduli regularizer: ``strength * mean_ij(R_ij * |W_ij| ** p)`` (the paper).

``R`` (``coefficients``, shape ``(n, n)``) is built once from random neuron positions on
a moduli space: ``R_ij = f(d(x_i, x_j))``, then optionally permuted (geometry destroyed,
distribution kept) and inverted (``max(R) - R``), then multiplied by ``scale``. With
``learn_embedding=True`` the positions are parameters and ``R`` is recomputed from them
at every call.
"""

from __future__ import annotations

import torch
from torch import nn

from geosparse.config import ConfigError
from geosparse.inhibitors import get_inhibitor
from geosparse.moduli import get_space
from geosparse.spaces import has_positions

L1_STAR_REFERENCE = {"space": "torus", "inhibitor": "dog", "invert": True}
"""The regularizer whose mean coefficient L1* matches (inverted torus DoG, ~66.5)."""

L1_STAR_AUTHORS_REFERENCE = {"space": "torus", "inhibitor": "dog", "invert": False}
"""The authors' ``mean`` option: mean of the non-inverted DoG (~14.9, 4.5x weaker)."""


def _check(n: int, p: float, strength: float, scale: float) -> None:
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not p > 0:
        raise ValueError(f"p must be positive, got {p!r}")
    if not strength >= 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0, got {scale!r}")


class ModuliRegularizer(nn.Module):
    """Penalty on an ``(n, n)`` recurrent weight matrix shaped by a moduli space.

    Args:
        n: number of hidden neurons (>= 2).
        space: moduli space name (``geosparse.moduli.SPACES``).
        inhibitor: inhibitor name (``geosparse.inhibitors.INHIBITORS``); ignored for the
            constant spaces ``standard`` (R = 1) and ``none`` (R = 0).
        invert: replace R by ``max(R) - R`` (all DoG experiments).
        permute: shuffle the n^2 entries of R uniformly (the permuted control).
        p: exponent on ``|W|`` (1: L1-type, 2: L2-type).
        strength: lam, the multiplier of the mean penalty.
        seed: seeds positions and permutation (a private ``torch.Generator``).
        learn_embedding: make the positions an ``nn.Parameter`` (paper v2).
        scale: constant multiplier on R (L1* uses the mean of a reference R).
    """

    def __init__(
        self,
        n: int,
        space: str,
        inhibitor: str = "dog",
        invert: bool = False,
        permute: bool = False,
        p: float = 1,
        strength: float = 0.1,
        seed: int = 0,
        learn_embedding: bool = False,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        _check(n, p, strength, scale)
        self.space = get_space(space)
        self.inhibitor_name = inhibitor
        self.inhibitor = get_inhibitor(inhibitor)
        self.n, self.invert, self.permute = n, invert, permute
        self.p, self.strength, self.scale = float(p), float(strength), float(scale)
        self.learn_embedding = learn_embedding
        if learn_embedding and not self.space.has_geometry:
            raise ValueError(f"learn_embedding needs a space with geometry, not {space!r}")

        generator = torch.Generator().manual_seed(seed)
        positions = self.space.sample(n, generator) if self.space.has_geometry else None
        order = torch.randperm(n * n, generator=generator) if permute else None
        if learn_embedding:
            self.positions = nn.Parameter(positions.float())
            self.register_buffer("order", order)
        else:
            if positions is not None:
                self.register_buffer("positions", positions.float())
            self.register_buffer("_coefficients", self._build(positions, order).float())
        # decided once, on the CPU: a check per call would sync a GPU with the host every step
        self._is_zero = self.strength == 0 or (not learn_embedding and not bool(self._coefficients.any()))

    @classmethod
    def l1_star(
        cls,
        n: int,
        reference: dict | None = None,
        p: float = 1,
        strength: float = 0.1,
        seed: int = 0,
    ) -> ModuliRegularizer:
        """L1 with every R_ij equal to the mean coefficient of ``reference``.

        ``reference`` defaults to the inverted torus DoG (``L1_STAR_REFERENCE``); pass
        ``L1_STAR_AUTHORS_REFERENCE`` for the authors' weaker ``mean`` option.
        """
        ref = cls(n, p=p, strength=strength, seed=seed, **(reference or L1_STAR_REFERENCE))
        mean = float(ref.coefficients.mean())
        return cls(n, "standard", p=p, strength=strength, seed=seed, scale=mean)

    def _build(self, positions: torch.Tensor | None, order: torch.Tensor | None) -> torch.Tensor:
        """Coefficient matrix ``(n, n)`` from positions ``(n, dim)``."""
        if self.space.name == "none":
            r = torch.zeros(self.n, self.n, dtype=torch.float64)
        elif self.space.name == "standard":
            r = torch.ones(self.n, self.n, dtype=torch.float64)
        else:
            smooth = self.learn_embedding
            r = self.inhibitor(self.space.distance(positions, positions, smooth=smooth))
        if order is not None:
            r = r.reshape(-1)[order].reshape(self.n, self.n)
        if self.invert:
            r = r.max() - r
        return r * self.scale

    @property
    def coefficients(self) -> torch.Tensor:
        """R, shape ``(n, n)``: a buffer, or recomputed from learnable positions."""
        if self.learn_embedding:
            return self._build(self.positions, self.order)
        return self._coefficients

    @property
    def is_zero(self) -> bool:
        """True when the penalty is identically zero (``none``, or strength 0)."""
        return self._is_zero

    def reg(self, weight: torch.Tensor) -> torch.Tensor:
        """``strength * mean(R * |weight| ** p)`` for ``weight`` of shape ``(n, n)``."""
        if weight.shape != (self.n, self.n):
            raise ValueError(f"weight must have shape ({self.n}, {self.n}), got {tuple(weight.shape)}")
        if self.is_zero:
            return weight.new_zeros(())
        magnitude = weight.abs() if self.p == 1 else weight.abs() ** self.p
        return self.strength * (self.coefficients * magnitude).mean()

    forward = reg

    @torch.no_grad()
    def project_(self) -> None:
        """Put learned positions back on their manifold (call after optimizer steps)."""
        if self.learn_embedding:
            self.positions.copy_(self.space.canonical(self.positions))

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, space={self.space.name}, inhibitor={self.inhibitor_name}, "
            f"invert={self.invert}, permute={self.permute}, p={self.p}, "
            f"strength={self.strength}, scale={self.scale:g}, learn={self.learn_embedding}"
        )


L1_STAR_SCALES = {"l1_star": L1_STAR_REFERENCE, "l1_star_authors": L1_STAR_AUTHORS_REFERENCE}
"""Named ``regularizer.scale`` values: L1 at the mean strength of that reference."""


def from_config(config: dict, n: int, seed: int) -> ModuliRegularizer:
    """Build a regularizer from a config's ``regularizer`` section (schema-checked).

    ``scale`` may be a number or ``l1_star`` / ``l1_star_authors``: plain L1 (space
    ``standard``) with every coefficient equal to the mean of the reference regularizer.
    """
    scale = config["scale"]
    if config["learn_embedding"] and not has_positions(config["space"]):
        raise ConfigError(
            f"config key 'regularizer.learn_embedding': true needs a space with neuron "
            f"positions, not {config['space']!r}"
        )
    if isinstance(scale, str):
        if config["space"] != "standard":
            raise ConfigError(f"regularizer.scale={scale!r} needs space 'standard', not {config['space']!r}")
        if scale not in L1_STAR_SCALES:
            raise ConfigError(f"unknown regularizer.scale {scale!r}; allowed: a number or {sorted(L1_STAR_SCALES)}")
        return ModuliRegularizer.l1_star(
            n, L1_STAR_SCALES[scale], p=config["p"], strength=config["strength"], seed=seed
        )
    return ModuliRegularizer(
        n,
        config["space"],
        config["inhibitor"],
        invert=config["invert"],
        permute=config["permute"],
        p=config["p"],
        strength=config["strength"],
        seed=seed,
        learn_embedding=config["learn_embedding"],
        scale=scale,
    )
