"""Inhibitor functions f: moduli distance -> penalty coefficient (the paper table).

Each maps a tensor of distances ``d`` (any shape, moduli units) to coefficients of the
same shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Inhibitor = Callable[[torch.Tensor], torch.Tensor]


def dog(d: torch.Tensor) -> torch.Tensor:
    """Difference of Gaussians: ``100 * (exp(-d^2 / 5) - exp(-4 d^2))``."""
    d2 = d * d
    return 100.0 * (torch.exp(-d2 / 5.0) - torch.exp(-4.0 * d2))


def square(d: torch.Tensor) -> torch.Tensor:
    """Diffusion: ``d^2``."""
    return d * d


def ripple(d: torch.Tensor) -> torch.Tensor:
    """Ripple / sinusoid: ``50 + 50 cos(2 d)``."""
    return 50.0 + 50.0 * torch.cos(2.0 * d)


def gauss(d: torch.Tensor) -> torch.Tensor:
    """Gaussian: ``100 * exp(-d^2 / 3)``."""
    return 100.0 * torch.exp(-d * d / 3.0)


def identity(d: torch.Tensor) -> torch.Tensor:
    """No inhibitor: the distance itself."""
    return d


INHIBITORS: dict[str, Inhibitor] = {
    "dog": dog,
    "square": square,
    "ripple": ripple,
    "gauss": gauss,
    "identity": identity,
}


def get_inhibitor(name: str) -> Inhibitor:
    """Look up an inhibitor by name; unknown names raise with the allowed values."""
    try:
        return INHIBITORS[name]
    except KeyError:
        raise ValueError(f"unknown inhibitor {name!r}; allowed values: {sorted(INHIBITORS)}") from None
