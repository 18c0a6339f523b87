"""ModuliRegularizer: the penalty formula, coefficient construction, controls, validation."""

from __future__ import annotations

import pytest
import torch

from geosparse.inhibitors import get_inhibitor
from geosparse.moduli import PERIOD, SPACES, get_space
from geosparse.regularizer import (
    L1_STAR_AUTHORS_REFERENCE,
    ModuliRegularizer,
    from_config,
)


def _weight(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, n, generator=torch.Generator().manual_seed(seed))


def _expected_coefficients(n: int, space: str, inhibitor: str, seed: int) -> torch.Tensor:
    """R_ij = f(d(x_i, x_j)) from positions drawn like the regularizer draws them."""
    s = get_space(space)
    x = s.sample(n, torch.Generator().manual_seed(seed))
    return get_inhibitor(inhibitor)(s.distance(x, x)).float()


@pytest.mark.parametrize("space", ["torus", "klein", "sphere", "torus6", "circle", "s3", "r3"])
@pytest.mark.parametrize("inhibitor", ["dog", "square", "gauss"])
def test_coefficients_are_the_inhibited_distances(space, inhibitor):
    reg = ModuliRegularizer(24, space, inhibitor, seed=7)
    r = reg.coefficients
    assert r.shape == (24, 24)
    assert torch.allclose(r, _expected_coefficients(24, space, inhibitor, 7), atol=1e-4, rtol=1e-5)
    assert torch.allclose(r, r.T)
    assert list(reg.parameters()) == [], "fixed positions: R is a buffer, not a parameter"
    assert "_coefficients" in dict(reg.named_buffers())


@pytest.mark.parametrize("p", [1, 2, 1.5, 0.5])
@pytest.mark.parametrize("space", ["torus", "klein", "standard"])
def test_penalty_is_strength_times_mean_of_r_times_abs_w_to_the_p(space, p):
    n, strength = 20, 0.37
    reg = ModuliRegularizer(n, space, "dog", invert=True, p=p, strength=strength, seed=3)
    w = _weight(n)
    r = reg.coefficients.double()
    by_hand = strength * sum(float(r[i, j]) * abs(float(w[i, j])) ** p for i in range(n) for j in range(n)) / (n * n)
    assert float(reg.reg(w)) == pytest.approx(by_hand, rel=1e-5)
    assert float(reg(w)) == pytest.approx(by_hand, rel=1e-5)


def test_penalty_gradient_for_l1():
    n, strength = 12, 0.1
    reg = ModuliRegularizer(n, "torus", "dog", invert=True, strength=strength, seed=1)
    w = _weight(n).requires_grad_()
    reg.reg(w).backward()
    expected = strength * reg.coefficients * torch.sign(w.detach()) / n**2
    assert torch.allclose(w.grad, expected, atol=1e-7)


def test_none_gives_zero_and_no_gradient():
    reg = ModuliRegularizer(16, "none", strength=0.5)
    assert torch.equal(reg.coefficients, torch.zeros(16, 16))
    w = _weight(16).requires_grad_()
    penalty = reg.reg(w)
    assert float(penalty) == 0.0
    assert reg.is_zero
    (penalty + (w * 0).sum()).backward()
    assert torch.equal(w.grad, torch.zeros(16, 16))


def test_zero_strength_gives_zero():
    reg = ModuliRegularizer(16, "torus", strength=0.0)
    assert float(reg.reg(_weight(16))) == 0.0


def test_standard_is_plain_l1_and_l2():
    w = _weight(16)
    l1 = ModuliRegularizer(16, "standard", strength=0.2)
    assert torch.equal(l1.coefficients, torch.ones(16, 16))
    assert float(l1.reg(w)) == pytest.approx(0.2 * float(w.abs().mean()), rel=1e-6)
    l2 = ModuliRegularizer(16, "standard", p=2, strength=0.2)
    assert float(l2.reg(w)) == pytest.approx(0.2 * float((w**2).mean()), rel=1e-6)


def test_invert_is_max_minus_r():
    plain = ModuliRegularizer(32, "torus", "dog", invert=False, seed=4).coefficients
    inverted = ModuliRegularizer(32, "torus", "dog", invert=True, seed=4).coefficients
    assert torch.allclose(inverted, plain.max() - plain, atol=1e-5)
    assert float(inverted.min()) == pytest.approx(0.0, abs=1e-5)
    # inverted DoG: the diagonal (d = 0, f = 0) is the most expensive entry
    assert torch.allclose(inverted.diagonal(), torch.full((32,), float(inverted.max())))


def test_permute_keeps_the_multiset_and_destroys_the_geometry():
    plain = ModuliRegularizer(32, "torus", "dog", seed=4).coefficients
    permuted = ModuliRegularizer(32, "torus", "dog", permute=True, seed=4).coefficients
    assert torch.equal(plain.flatten().sort().values, permuted.flatten().sort().values)
    assert not torch.equal(plain, permuted)
    assert (plain != permuted).float().mean() > 0.9
    assert not torch.allclose(permuted, permuted.T), "a shuffled R is no longer symmetric"
    # deterministic for a seed, different for another
    again = ModuliRegularizer(32, "torus", "dog", permute=True, seed=4).coefficients
    other = ModuliRegularizer(32, "torus", "dog", permute=True, seed=5).coefficients
    assert torch.equal(permuted, again) and not torch.equal(permuted, other)


def test_permute_then_invert():
    permuted = ModuliRegularizer(32, "torus", "dog", permute=True, seed=4).coefficients
    both = ModuliRegularizer(32, "torus", "dog", permute=True, invert=True, seed=4).coefficients
    assert torch.allclose(both, permuted.max() - permuted, atol=1e-5)
    inverted = ModuliRegularizer(32, "torus", "dog", invert=True, seed=4).coefficients
    assert torch.allclose(both.flatten().sort().values, inverted.flatten().sort().values, atol=1e-5)


def test_scale_multiplies_r():
    base = ModuliRegularizer(16, "klein", "gauss", seed=2).coefficients
    scaled = ModuliRegularizer(16, "klein", "gauss", seed=2, scale=2.5).coefficients
    assert torch.allclose(scaled, 2.5 * base, rtol=1e-6)


def test_positions_depend_on_the_seed():
    a = ModuliRegularizer(16, "torus", seed=0).coefficients
    b = ModuliRegularizer(16, "torus", seed=0).coefficients
    c = ModuliRegularizer(16, "torus", seed=1).coefficients
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_l1_star_matches_the_mean_inverted_torus_dog():
    n = 1024
    star = ModuliRegularizer.l1_star(n, seed=0)
    r = star.coefficients
    assert r.shape == (n, n)
    assert torch.unique(r).numel() == 1, "every L1* coefficient is the same"
    reference = ModuliRegularizer(n, "torus", "dog", invert=True, seed=0).coefficients
    assert float(r[0, 0]) == pytest.approx(float(reference.double().mean()), rel=1e-5)
    assert 65.5 < float(r[0, 0]) < 67.5  # ~66.5 (the paper)
    w = _weight(n)
    assert float(star.reg(w)) == pytest.approx(0.1 * float(r[0, 0]) * float(w.abs().mean()), rel=1e-5)


def test_l1_star_authors_variant_is_the_non_inverted_mean():
    n = 1024
    authors = ModuliRegularizer.l1_star(n, L1_STAR_AUTHORS_REFERENCE, seed=0).coefficients
    assert torch.unique(authors).numel() == 1
    assert 14.3 < float(authors[0, 0]) < 15.3  # ~14.9, about 4.5x weaker than L1*
    star = ModuliRegularizer.l1_star(n, seed=0).coefficients
    assert float(star[0, 0] / authors[0, 0]) == pytest.approx(4.5, abs=0.2)


def _config(**changes) -> dict:
    config = {
        "space": "torus",
        "inhibitor": "dog",
        "invert": True,
        "permute": False,
        "p": 1,
        "strength": 0.1,
        "scale": 1.0,
        "learn_embedding": False,
    }
    config.update(changes)
    return config


def test_from_config_builds_the_named_regularizer():
    reg = from_config(_config(space="klein", p=2, strength=0.3), 16, seed=9)
    direct = ModuliRegularizer(16, "klein", "dog", invert=True, p=2, strength=0.3, seed=9)
    assert torch.equal(reg.coefficients, direct.coefficients)
    assert reg.p == 2 and reg.strength == 0.3
    star = from_config(_config(space="standard", scale="l1_star"), 256, seed=0)
    assert 65.5 < float(star.coefficients[0, 0]) < 67.5
    authors = from_config(_config(space="standard", scale="l1_star_authors"), 256, seed=0)
    assert 14.0 < float(authors.coefficients[0, 0]) < 15.5
    with pytest.raises(ValueError, match="standard"):
        from_config(_config(space="torus", scale="l1_star"), 16, seed=0)
    with pytest.raises(ValueError, match="l1_star"):
        from_config(_config(space="standard", scale="l2_star"), 16, seed=0)


@pytest.mark.parametrize(
    "kwargs,names",
    [
        ({"space": "tors"}, ["tors", *SPACES]),
        ({"space": "torus", "inhibitor": "doggo"}, ["doggo", "dog", "square", "ripple", "gauss"]),
        ({"space": "torus", "n": 1}, ["n", "2"]),
        ({"space": "torus", "n": 0}, ["n", "2"]),
        ({"space": "torus", "strength": -0.1}, ["strength", "0"]),
        ({"space": "torus", "p": 0}, ["p", "positive"]),
        ({"space": "torus", "p": -1}, ["p", "positive"]),
        ({"space": "torus", "scale": -1.0}, ["scale"]),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, names):
    kwargs = {"n": 8, **kwargs}
    with pytest.raises(ValueError) as info:
        ModuliRegularizer(**kwargs)
    message = str(info.value)
    for name in names:
        assert name in message


def test_learn_embedding_needs_geometry():
    with pytest.raises(ValueError, match="learn_embedding"):
        ModuliRegularizer(8, "standard", learn_embedding=True)


def test_weight_shape_is_checked():
    with pytest.raises(ValueError, match="shape"):
        ModuliRegularizer(8, "torus").reg(torch.zeros(8, 9))


@pytest.mark.parametrize("space", ["sphere", "s3", "circle", "torus", "klein", "r3"])
def test_learned_positions_are_parameters_that_train_and_stay_on_the_manifold(space):
    n = 24
    reg = ModuliRegularizer(n, space, "dog", invert=True, strength=1.0, seed=2, learn_embedding=True)
    params = dict(reg.named_parameters())
    assert list(params) == ["positions"]
    assert params["positions"].shape == (n, get_space(space).dim)
    # at initialisation R equals the fixed-embedding R up to the smoothing margin (spheres
    # keep arccos inside 1 - 1e-6, so d(x, x) = radius * 1.4e-3 and DoG(d) < 0.1 there)
    fixed = ModuliRegularizer(n, space, "dog", invert=True, strength=1.0, seed=2)
    assert torch.allclose(reg.coefficients, fixed.coefficients, atol=0.1)

    w = _weight(n)
    before = reg.positions.detach().clone()
    r_before = reg.coefficients.detach().clone()
    optimizer = torch.optim.SGD(reg.parameters(), lr=50.0)
    for _ in range(5):
        optimizer.zero_grad()
        reg.reg(w).backward()
        grad = reg.positions.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
        optimizer.step()
        reg.project_()
        x = reg.positions.detach()
        kind = get_space(space).kind
        if kind == "sphere":
            assert torch.allclose(x.norm(dim=1), torch.ones(n), atol=1e-6)
        elif kind in ("flat", "klein"):
            assert ((x >= 0) & (x < PERIOD)).all()
    assert not torch.equal(reg.positions.detach(), before)
    assert not torch.allclose(reg.coefficients.detach(), r_before), "R follows the positions"
    assert torch.isfinite(reg.coefficients).all()


def test_project_moves_points_back_to_the_sphere():
    reg = ModuliRegularizer(10, "sphere", learn_embedding=True, seed=0)
    with torch.no_grad():
        reg.positions.mul_(3.0)
    reg.project_()
    assert torch.allclose(reg.positions.norm(dim=1), torch.ones(10), atol=1e-6)


@pytest.mark.parametrize("space", ["sphere", "circle", "s3", "torus", "klein"])
def test_a_bf16_learned_penalty_has_a_finite_gradient(space):
    """Under bfloat16 autocast the distances between learned positions stay float32: a
    bfloat16 dot product of nearby sphere points rounds to 1, where arccos has no finite
    gradient."""
    reg = ModuliRegularizer(64, space, learn_embedding=True, seed=0, strength=1.0)
    weight = torch.randn(64, 64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        penalty = reg.reg(weight)
    penalty.backward()
    assert torch.isfinite(penalty) and torch.isfinite(reg.positions.grad).all()
    assert reg.space.distance(reg.positions.bfloat16(), reg.positions.bfloat16()).dtype == torch.float32
