"""The batched ReLU recurrence (geosparse.recurrence) against torch's nn.RNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geosparse.recurrence import relu_rnn
from geosparse.tasks.navigation import NavigationRNN


def _problem(steps: int, batch: int, hidden: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    """An nn.RNN and inputs where about half the units are inactive (ReLU at 0)."""
    torch.manual_seed(seed)
    rnn = nn.RNN(2, hidden, nonlinearity="relu", bias=False).to(dtype)
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(torch.rand_like(rnn.weight_hh_l0) > 0.5)  # pruned: exact zeros
    x = torch.randn(steps, batch, 2, dtype=dtype, requires_grad=True)
    h0 = torch.randn(batch, hidden, dtype=dtype, requires_grad=True)
    return rnn, x, h0


def _gradients(output: torch.Tensor, upstream: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(output, inputs, upstream))


@pytest.mark.parametrize("steps", [1, 2, 20])
def test_outputs_and_gradients_equal_nn_rnn(steps):
    rnn, x, h0 = _problem(steps, batch=16, hidden=64)
    inputs = [x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0]
    expected, _ = rnn(x, h0[None])
    got = relu_rnn(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0)
    assert 0.2 < float((got == 0).float().mean()) < 0.8  # both branches of the ReLU are exercised
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    upstream = torch.randn_like(expected)
    for mine, theirs in zip(_gradients(got, upstream, inputs), _gradients(expected, upstream, inputs), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_the_incoming_gradient_is_read_not_written_and_may_be_a_broadcast():
    """The backward pass reads ``grad_out`` in place of a copy: it must leave the caller's
    tensor as it was, and accept autograd's stride-0 gradient of a ``sum()``."""
    rnn, x, h0 = _problem(steps=5, batch=6, hidden=32)
    inputs = [x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0]
    upstream = torch.randn(5, 6, 32)
    kept = upstream.clone()
    _gradients(relu_rnn(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0), upstream, inputs)
    assert torch.equal(upstream, kept)
    broadcast = torch.ones(()).expand(5, 6, 32)  # what out.sum().backward() sends
    mine = _gradients(relu_rnn(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0), broadcast, inputs)
    theirs = _gradients(rnn(x, h0[None])[0], broadcast, inputs)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_gradients_pass_gradcheck_in_float64():
    rnn, x, h0 = _problem(steps=4, batch=3, hidden=5, dtype=torch.float64, seed=1)
    assert torch.autograd.gradcheck(relu_rnn, (x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0))


def test_a_pruned_recurrent_weight_gets_the_gradient_of_the_dense_product():
    """Masks are applied after the optimizer step (MagnitudePruner.apply_), so the gradient
    at pruned entries is that of the dense product, as with nn.RNN."""
    rnn, x, h0 = _problem(steps=6, batch=8, hidden=32)
    upstream = torch.randn(6, 8, 32)
    (mine,) = _gradients(relu_rnn(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0), upstream, [rnn.weight_hh_l0])
    (theirs,) = _gradients(rnn(x, h0[None])[0], upstream, [rnn.weight_hh_l0])
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_the_navigation_model_uses_it_on_a_cpu_and_nn_rnn_otherwise():
    torch.manual_seed(0)
    model = NavigationRNN(10, 24)
    velocity, init_code = torch.randn(5, 4, 2), torch.softmax(torch.randn(4, 10), -1)
    assert type(model.hidden(velocity, init_code).grad_fn).__name__ == "_ReluRNNBackward"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 runs keep nn.RNN
        assert type(model.hidden(velocity, init_code).grad_fn).__name__ != "_ReluRNNBackward"
    model.batched_recurrence = False
    assert type(model.hidden(velocity, init_code).grad_fn).__name__ != "_ReluRNNBackward"
    tanh = NavigationRNN(10, 24, activation="tanh")
    assert type(tanh.hidden(velocity, init_code).grad_fn).__name__ != "_ReluRNNBackward"


def test_the_navigation_model_gives_nn_rnns_logits_and_gradients():
    torch.manual_seed(0)
    model = NavigationRNN(16, 48)
    velocity, init_code = torch.randn(7, 5, 2), torch.softmax(torch.randn(5, 16), -1)
    results = []
    for batched in (True, False):
        model.batched_recurrence = batched
        model.zero_grad()
        logits = model(velocity, init_code)
        logits.square().sum().backward()
        results.append([logits.detach()] + [p.grad.clone() for p in model.parameters()])
    for mine, theirs in zip(*results, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shapes", [((5, 4), (4, 8)), ((5, 4, 2), (3, 8))])
def test_bad_shapes_are_rejected(shapes):
    x_shape, h0_shape = shapes
    rnn = nn.RNN(2, 8, nonlinearity="relu", bias=False)
    with pytest.raises(ValueError, match="expected x"):
        relu_rnn(torch.randn(x_shape), torch.randn(h0_shape), rnn.weight_ih_l0, rnn.weight_hh_l0)
