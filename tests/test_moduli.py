"""Moduli spaces: metric axioms, periodicity, Klein bottle quotient metric, sphere clamping."""

from __future__ import annotations

import math

import pytest
import torch

from geosparse.moduli import PERIOD, SPACES, get_space, pairwise_distances, sample_positions

GEOMETRIC = ["torus", "torus6", "klein", "circle", "sphere", "s3", "r3"]
TOL = 1e-9
# arccos is ill-conditioned near +-1: in float64, <a, a> = 1 - 1e-16 gives an angle of
# ~1.5e-8 rad, i.e. up to ~1.5e-7 in s3 units. The spec prescribes arccos, so spheres get
# a looser (still far below any meaningful distance) tolerance.
SPHERE_TOL = 1e-6


def _tol(name: str) -> float:
    return SPHERE_TOL if get_space(name).kind == "sphere" else TOL


def test_every_space_with_geometry_is_covered():
    assert sorted(n for n, s in SPACES.items() if s.has_geometry) == sorted(GEOMETRIC)
    assert {n for n, s in SPACES.items() if not s.has_geometry} == {"standard", "none"}


@pytest.mark.parametrize("name", GEOMETRIC)
def test_metric_axioms(name, float64_generator):
    space, tol = get_space(name), _tol(name)
    x = space.sample(60, float64_generator)
    assert x.dtype == torch.float64
    d = space.distance(x, x)
    assert d.shape == (60, 60)
    assert not torch.isnan(d).any()
    # identity of indiscernibles (one direction) and non-negativity
    assert torch.diagonal(d).abs().max() <= tol
    assert (d >= 0).all()
    off = d + torch.eye(60, dtype=d.dtype) * 1e9
    assert off.min() > 0, "distinct random points must have positive distance"
    # symmetry
    assert torch.allclose(d, d.T, atol=tol, rtol=0)
    # triangle inequality d(i, k) <= d(i, j) + d(j, k) for all triples
    via = d[:, :, None] + d[None, :, :]  # (i, j, k): d(i, j) + d(j, k)
    assert (d[:, None, :] <= via + tol).all()


@pytest.mark.parametrize("name", GEOMETRIC)
def test_distance_is_vectorised_n_by_m(name, float64_generator):
    space = get_space(name)
    a, b = space.sample(7, float64_generator), space.sample(4, float64_generator)
    d = space.distance(a, b)
    assert d.shape == (7, 4)
    for i in range(7):
        for j in range(4):
            single = space.distance(a[i : i + 1], b[j : j + 1])
            assert single.shape == (1, 1)
            assert abs(float(single) - float(d[i, j])) <= TOL
    assert torch.allclose(space.distance(b, a), d.T, atol=TOL, rtol=0)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_sampling_is_seeded_and_in_the_domain(name):
    space = get_space(name)
    a = space.sample(200, torch.Generator().manual_seed(5))
    b = space.sample(200, torch.Generator().manual_seed(5))
    c = space.sample(200, torch.Generator().manual_seed(6))
    assert a.shape == (200, space.dim)
    assert torch.equal(a, b) and not torch.equal(a, c)
    if space.kind == "sphere":
        assert torch.allclose(a.norm(dim=1), torch.ones(200, dtype=a.dtype), atol=1e-12)
    else:
        assert (a >= 0).all() and (a < PERIOD).all()
    assert torch.equal(sample_positions(name, 200, torch.Generator().manual_seed(5)), a)
    assert torch.allclose(pairwise_distances(name, a), space.distance(a, a), atol=0)


def test_torus_known_values():
    torus = get_space("torus")
    a = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    b = torch.tensor([[9.5, 9.5], [3.5, 4.5], [5.5, 0.5]], dtype=torch.float64)
    expected = torch.tensor([[math.sqrt(2.0), 5.0, 5.0]], dtype=torch.float64)
    assert torch.allclose(torus.distance(a, b), expected, atol=TOL)
    # the largest possible distance on the 10 x 10 torus is at the half-period diagonal
    far = torch.tensor([[5.5, 5.5]], dtype=torch.float64)
    assert abs(float(torus.distance(a, far)) - math.sqrt(50.0)) <= TOL


@pytest.mark.parametrize("name", ["torus", "torus6"])
def test_flat_torus_periodicity(name, float64_generator):
    space = get_space(name)
    a, b = space.sample(20, float64_generator), space.sample(25, float64_generator)
    d = space.distance(a, b)
    for axis in range(space.dim):
        for k in (-2, -1, 1, 3):
            shift = torch.zeros(space.dim, dtype=torch.float64)
            shift[axis] = PERIOD * k
            assert torch.allclose(space.distance(a + shift, b), d, atol=1e-9, rtol=0)
            assert torch.allclose(space.distance(a, b - shift), d, atol=1e-9, rtol=0)
    every_axis = torch.full((space.dim,), PERIOD, dtype=torch.float64)
    assert torch.allclose(space.distance(a + every_axis, b - 2 * every_axis), d, atol=1e-9)
    # per-axis wrap: no coordinate difference exceeds half a period
    assert d.max() <= math.sqrt(space.dim) * PERIOD / 2 + TOL


def _translate(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[:, 0], p[:, 1] + PERIOD], dim=1)


def _glide(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[:, 0] + PERIOD, PERIOD - p[:, 1]], dim=1)


def _inverse_glide(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[:, 0] - PERIOD, PERIOD - p[:, 1]], dim=1)


@pytest.mark.parametrize(
    "move",
    [
        _translate,
        _glide,
        _inverse_glide,
        lambda p: _glide(_glide(p)),
        lambda p: _glide(_translate(_translate(p))),
        lambda p: _inverse_glide(_inverse_glide(_inverse_glide(p))),
    ],
)
def test_klein_distance_is_invariant_under_the_group(move, float64_generator):
    klein = get_space("klein")
    a, b = klein.sample(30, float64_generator), klein.sample(30, float64_generator)
    d = klein.distance(a, b)
    moved = move(b)
    assert not ((moved >= 0) & (moved < PERIOD)).all(), "the image must leave the domain"
    assert torch.allclose(klein.distance(a, moved), d, atol=1e-9, rtol=0)
    assert torch.allclose(klein.distance(move(a), b), d, atol=1e-9, rtol=0)


def test_klein_is_not_a_torus():
    """The glide reflection identifies (x, y) with (x + 10, 10 - y), not (x + 10, y)."""
    klein, torus = get_space("klein"), get_space("torus")
    a = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    b = torch.tensor([[9.5, 8.0]], dtype=torch.float64)
    # image of b under the inverse glide: (-0.5, 2.0): distance 1 on the Klein bottle
    assert abs(float(klein.distance(a, b)) - 1.0) <= TOL
    # on the torus the same points are sqrt(1 + 16) apart
    assert abs(float(torus.distance(a, b)) - math.sqrt(17.0)) <= TOL
    # and the torus-only identification (x + 10, y) is not a symmetry of the Klein bottle
    c = torch.tensor([[9.5, 2.0]], dtype=torch.float64)
    assert float(klein.distance(a, c)) > 1.5


def test_klein_distance_matches_brute_force_over_many_group_images(float64_generator):
    klein = get_space("klein")
    a, b = klein.sample(80, float64_generator), klein.sample(90, float64_generator)
    ax, ay = a[:, 0, None], a[:, 1, None]
    bx, by = b[None, :, 0], b[None, :, 1]
    best = torch.full((80, 90), math.inf, dtype=torch.float64)
    for m in range(-4, 5):
        for n in range(-4, 5):
            image_x = bx + PERIOD * m
            image_y = (by if m % 2 == 0 else PERIOD - by) + PERIOD * n
            best = torch.minimum(best, torch.sqrt((ax - image_x) ** 2 + (ay - image_y) ** 2))
    assert torch.allclose(klein.distance(a, b), best, atol=1e-9, rtol=0)


def test_klein_canonical_points_lie_in_the_fundamental_domain(float64_generator):
    klein = get_space("klein")
    x = (torch.rand(500, 2, generator=float64_generator, dtype=torch.float64) - 0.5) * 80
    c = klein.canonical(x)
    assert ((c >= 0) & (c < PERIOD)).all()
    assert torch.allclose(klein.distance(x, c).diagonal(), torch.zeros(500, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("name,radius", [("circle", 5.0), ("sphere", 5.0), ("s3", 10.0)])
def test_sphere_distances_clamp_identical_and_antipodal(name, radius):
    space = get_space(name)
    e = torch.zeros(1, space.dim, dtype=torch.float64)
    e[0, 0] = 1.0
    assert float(space.distance(e, e)) == 0.0
    assert abs(float(space.distance(e, -e)) - radius * math.pi) <= TOL
    # unnormalised inputs: distance uses directions only
    assert abs(float(space.distance(3 * e, -0.5 * e)) - radius * math.pi) <= TOL
    ortho = torch.zeros(1, space.dim, dtype=torch.float64)
    ortho[0, 1] = 2.0
    assert abs(float(space.distance(e, ortho)) - radius * math.pi / 2) <= TOL
    # the maximum distance is radius * pi
    x = space.sample(100, torch.Generator().manual_seed(0))
    assert space.distance(x, x).max() <= radius * math.pi + TOL


@pytest.mark.parametrize("name", ["circle", "sphere", "s3"])
@pytest.mark.parametrize("smooth", [False, True])
def test_sphere_distance_has_no_nan_under_float32_rounding(name, smooth):
    space = get_space(name)
    x = torch.randn(1500, space.dim, generator=torch.Generator().manual_seed(3))
    x = (x / x.norm(dim=1, keepdim=True)).float()
    # make sure the test exercises the rounding: some inner products fall outside [-1, 1]
    unit = x / x.norm(dim=1, keepdim=True)
    assert ((unit @ unit.T).diagonal() > 1).any()
    assert ((unit @ (-unit).T).diagonal() < -1).any()
    for a, b in ((x, x), (x, -x)):
        d = space.distance(a, b, smooth=smooth)
        assert d.dtype == torch.float32 and d.shape == (1500, 1500)
        assert not torch.isnan(d).any()
    assert space.distance(x, x, smooth=smooth).diagonal().abs().max() < 0.05
    antipodal = space.distance(x, -x, smooth=smooth).diagonal()
    assert (antipodal - space.radius * math.pi).abs().max() < 0.05


def test_unknown_space_names_allowed_values():
    with pytest.raises(ValueError, match="tors") as info:
        get_space("tors")
    for name in SPACES:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["standard", "none"])
def test_constant_spaces_have_no_positions(name):
    with pytest.raises(ValueError):
        get_space(name).sample(3, torch.Generator())
