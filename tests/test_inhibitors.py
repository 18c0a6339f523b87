"""Inhibitor functions f(d) at known points (the paper's table)."""

from __future__ import annotations

import math

import pytest
import torch

from geosparse.inhibitors import INHIBITORS, get_inhibitor


def _f(name: str, d: float) -> float:
    return float(get_inhibitor(name)(torch.tensor(d, dtype=torch.float64)))


def test_registry_names():
    assert set(INHIBITORS) == {"dog", "square", "ripple", "gauss", "identity"}


@pytest.mark.parametrize(
    "name,d,expected",
    [
        ("dog", 0.0, 0.0),
        ("dog", 1.0, 100 * (math.exp(-1 / 5) - math.exp(-4))),
        ("dog", 2.0, 100 * (math.exp(-4 / 5) - math.exp(-16))),
        ("square", 0.0, 0.0),
        ("square", 3.0, 9.0),
        ("square", -2.0, 4.0),
        ("ripple", 0.0, 100.0),
        ("ripple", math.pi / 2, 0.0),
        ("ripple", math.pi / 4, 50.0),
        ("ripple", math.pi, 100.0),
        ("gauss", 0.0, 100.0),
        ("gauss", math.sqrt(3.0), 100 * math.exp(-1)),
        ("identity", 0.0, 0.0),
        ("identity", 2.5, 2.5),
    ],
)
def test_values_at_known_points(name, d, expected):
    assert _f(name, d) == pytest.approx(expected, abs=1e-10)


def test_dog_shape_peak_and_tail():
    d = torch.linspace(0, 10, 100001, dtype=torch.float64)
    r = get_inhibitor("dog")(d)
    peak = int(r.argmax())
    # analytic peak: d^2 = ln(20) / 3.8, value ~81.1
    assert float(d[peak]) == pytest.approx(math.sqrt(math.log(20) / 3.8), abs=1e-3)
    assert float(r.max()) == pytest.approx(81.14, abs=0.01)
    assert (r >= 0).all()
    assert float(r[-1]) < 1e-6 * 100  # decays to ~0 far away


@pytest.mark.parametrize("name", sorted(INHIBITORS))
def test_elementwise_and_shape_preserving(name):
    f = get_inhibitor(name)
    d = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 7
    out = f(d)
    assert out.shape == d.shape and out.dtype == d.dtype
    flat = torch.stack([f(x) for x in d.flatten()])
    assert torch.allclose(out.flatten(), flat, atol=0, rtol=0)


def test_identity_returns_the_distance():
    d = torch.tensor([0.0, 0.3, 4.2])
    assert torch.equal(get_inhibitor("identity")(d), d)


def test_unknown_inhibitor_names_allowed_values():
    with pytest.raises(ValueError, match="doggo") as info:
        get_inhibitor("doggo")
    for name in INHIBITORS:
        assert name in str(info.value)
