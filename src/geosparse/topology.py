"""The hidden manifold of a trained navigation model: rate maps and persistent homology.

``rate_maps`` runs the model on fresh trajectories and averages every hidden unit's
activity over a grid of position bins: ``(Ng, bins, bins)``. The population vectors of
the visited bins form a point cloud (one point per bin, ``Ng`` coordinates), reduced by
PCA to ``pca_dims`` dimensions; ``persistence`` computes its persistent homology up to
``max_dim`` with ripser.py (the ``topology`` extra, from PyPI), on a greedy subsample of
``n_perm`` points.

Long-lived bars (``long_lived``): a bar is long-lived when its lifetime exceeds
``LONG_LIVED_FACTOR`` x the longest finite H0 bar (the scale at which the subsample
becomes connected; shorter features are sampling noise). H0 counts the infinite bar too.
A torus gives (1, 2, 1), a circle (1, 1, 0), a disk or a square arena (1, 0, 0).
"""

from __future__ import annotations

import numpy as np
import torch

from geosparse.runio import finite_or_none

LONG_LIVED_FACTOR = 1.5
"""A bar is long-lived when it lives this many times the longest finite H0 bar."""


@torch.no_grad()
def rate_maps(model, stream, batches: int, bins: int, box: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(maps (Ng, bins, bins), occupancy (bins, bins))``: mean hidden activity of every
    unit per position bin over ``batches`` batches of ``stream`` (a
    ``TrajectoryGenerator``); bins never visited are NaN. The box is centred at 0."""
    model.eval()
    n_hidden = model.rnn.hidden_size
    sums = torch.zeros(n_hidden, bins * bins, dtype=torch.float64)
    counts = torch.zeros(bins * bins, dtype=torch.float64)
    width, height = box
    for _ in range(batches):
        batch = stream.next_batch()
        hidden = model.hidden(batch.velocity, batch.init_code).reshape(-1, n_hidden).double().cpu()
        pos = batch.position.reshape(-1, 2).double().cpu()
        ix = ((pos[:, 0] / width + 0.5) * bins).long().clamp(0, bins - 1)
        iy = ((pos[:, 1] / height + 0.5) * bins).long().clamp(0, bins - 1)
        cell = iy * bins + ix
        sums.index_add_(1, cell, hidden.t())
        counts.index_add_(0, cell, torch.ones_like(cell, dtype=torch.float64))
    maps = sums / counts.where(counts > 0, torch.tensor(float("nan"), dtype=torch.float64))
    return maps.view(n_hidden, bins, bins), counts.view(bins, bins)


def population_cloud(maps: torch.Tensor, pca_dims: int) -> np.ndarray:
    """``(points, pca_dims)``: the visited bins' population vectors, centred, projected
    on their first ``pca_dims`` principal components (units with no variance add nothing)."""
    flat = maps.reshape(maps.shape[0], -1).t()  # (bins^2, Ng)
    points = flat[~torch.isnan(flat).any(dim=1)].double()
    points = points - points.mean(dim=0)
    dims = min(pca_dims, *points.shape)
    _, _, v = torch.linalg.svd(points, full_matrices=False)
    return (points @ v[:dims].t()).numpy()


def persistence(points: np.ndarray, max_dim: int, n_perm: int) -> list[np.ndarray]:
    """Persistence diagrams ``[(k, 2) birth/death per dimension 0..max_dim]`` of a point
    cloud (ripser.py; greedy subsample of ``n_perm`` points when there are more)."""
    try:
        from ripser import ripser
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("persistent homology needs ripser.py: pip install -e '.[pipeline]'") from None
    n_perm = min(n_perm, len(points))
    return ripser(points, maxdim=max_dim, n_perm=n_perm)["dgms"]


def long_lived(diagrams: list[np.ndarray], factor: float = LONG_LIVED_FACTOR) -> tuple[list[int], float]:
    """``(counts per dimension, threshold)``: bars living longer than ``factor`` x the
    longest finite H0 bar; the infinite H0 bar counts."""
    h0 = diagrams[0]
    finite0 = h0[np.isfinite(h0[:, 1])]
    scale = float((finite0[:, 1] - finite0[:, 0]).max()) if len(finite0) else 0.0
    threshold = factor * scale
    counts = []
    for diagram in diagrams:
        life = diagram[:, 1] - diagram[:, 0]
        counts.append(int(np.sum(np.isinf(life) | (life > threshold))))
    return counts, threshold


def finite_or_none_pairs(diagram: np.ndarray) -> list[list[float | None]]:
    """A diagram as JSON-safe ``[birth, death]`` pairs (an infinite death is None)."""
    return [[float(b), finite_or_none(float(d))] for b, d in diagram]
