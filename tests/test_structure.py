"""Connectivity locality, ordered heatmaps and the topology of point clouds
(geosparse.structure, geosparse.topology) on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geosparse.moduli import get_space
from geosparse.regularizer import ModuliRegularizer
from geosparse.sparse.ordering import geometry_order
from geosparse.structure import locality, ordered_magnitude, positions_of, reference_positions
from geosparse.topology import long_lived, persistence, population_cloud

N = 64


def _torus_positions(seed: int = 0) -> torch.Tensor:
    return ModuliRegularizer(N, "torus", seed=seed).positions


def test_locality_is_one_for_every_pair_and_below_one_for_near_pairs():
    positions, space = _torus_positions(), get_space("torus")
    distance = space.distance(positions, positions)
    assert locality(torch.ones(N, N), positions, space) == pytest.approx(1.0)
    near = (distance < distance[distance > 0].quantile(0.1)).float()
    far = (distance > distance.quantile(0.9)).float()
    assert locality(near, positions, space) < 0.5 < 1.5 < locality(far, positions, space)
    assert math.isnan(locality(torch.eye(N), positions, space))  # no off-diagonal weight survives


def test_locality_of_a_random_mask_is_about_one():
    positions, space = _torus_positions(), get_space("torus")
    g = torch.Generator().manual_seed(0)
    scores = [locality((torch.rand(N, N, generator=g) < 0.1).float(), positions, space) for _ in range(20)]
    assert abs(float(np.mean(scores)) - 1.0) < 0.03


def test_ordered_magnitude_keeps_the_mean_and_shows_a_local_mask_as_a_band():
    positions, space = _torus_positions(), get_space("torus")
    distance = space.distance(positions, positions)
    local = torch.where(distance < 2.0, torch.randn(N, N), torch.zeros(N, N))
    heat = ordered_magnitude(local, positions, space, 8)
    assert heat.shape == (8, 8)
    assert float(heat.mean()) == pytest.approx(float(local.abs().mean()), rel=1e-6)
    diagonal, off = torch.diagonal(heat).mean(), heat[~torch.eye(8, dtype=torch.bool)].mean()
    assert diagonal > 3 * off  # geometry order puts near neurons next to each other
    with pytest.raises(ValueError, match="must divide"):
        ordered_magnitude(local, positions, space, 7)
    assert sorted(geometry_order(positions, space).tolist()) == list(range(N))


def test_runs_without_positions_use_the_torus_positions_of_their_seed():
    none = ModuliRegularizer(N, "none", seed=0)
    positions, space, own = positions_of(none, seed=3)
    assert not own and space.name == "torus"
    from geosparse.runio import derive_seed

    torus = ModuliRegularizer(N, "torus", seed=derive_seed(3, "moduli"))
    assert torch.equal(positions, torus.positions) and torch.equal(positions, reference_positions(N, 3))
    positions, _, own = positions_of(torus, seed=3)
    assert own and torch.equal(positions, torus.positions)


def _bars(points: np.ndarray) -> list[int]:
    return long_lived(persistence(points, max_dim=2, n_perm=200))[0]


def test_persistent_homology_finds_a_torus():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 2 * np.pi, (2, 800))
    torus = np.c_[np.cos(a), np.sin(a), np.cos(b), np.sin(b)] + 0.03 * rng.normal(size=(800, 4))
    assert _bars(torus) == [1, 2, 1]


def test_persistent_homology_finds_a_circle_and_a_disk():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 2 * np.pi, 300)
    circle = np.c_[np.cos(a), np.sin(a)] + 0.03 * rng.normal(size=(300, 2))
    assert _bars(circle) == [1, 1, 0]
    assert _bars(rng.uniform(-1, 1, (300, 2))) == [1, 0, 0]


def test_population_cloud_drops_unvisited_bins_and_projects():
    maps = torch.randn(10, 4, 4, dtype=torch.float64)
    maps[:, 0, 0] = float("nan")
    cloud = population_cloud(maps, pca_dims=3)
    assert cloud.shape == (15, 3)
    assert np.allclose(cloud.mean(axis=0), 0)
