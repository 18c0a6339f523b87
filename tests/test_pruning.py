"""Gradual magnitude pruning: schedule, global/per-tensor counts, cumulative masks, RNNs."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from geosparse.pruning import (
    MagnitudePruner,
    lottery_ticket_reinit,
    measured_sparsity,
    scheduled_fraction,
    w_hh_sparsity,
)


# ----------------------------------------------------------------------------- schedule
def test_linear_schedule_values():
    epochs, target = 5, 0.9
    fractions = [scheduled_fraction(e, epochs, target) for e in range(epochs)]
    assert fractions == pytest.approx([target * e / (epochs - 1) for e in range(epochs)])
    assert fractions[0] == 0.0
    assert fractions[-1] == pytest.approx(target)
    assert all(a < b for a, b in itertools.pairwise(fractions))


@pytest.mark.parametrize("epochs", [2, 3, 30])
def test_last_epoch_trains_at_the_target(epochs):
    for schedule in ("linear", "cubic"):
        assert scheduled_fraction(epochs - 1, epochs, 0.98, schedule) == pytest.approx(0.98)
        assert scheduled_fraction(0, epochs, 0.98, schedule) == 0.0


def test_single_epoch_means_the_target():
    assert scheduled_fraction(0, 1, 0.9) == pytest.approx(0.9)
    assert scheduled_fraction(0, 1, 0.9, "cubic") == pytest.approx(0.9)


def test_cubic_schedule():
    epochs, target = 5, 0.8
    for e in range(epochs):
        expected = target * (1 - (1 - e / (epochs - 1)) ** 3)
        assert scheduled_fraction(e, epochs, target, "cubic") == pytest.approx(expected)
        # cubic prunes faster early than linear
        if 0 < e < epochs - 1:
            assert scheduled_fraction(e, epochs, target, "cubic") > scheduled_fraction(e, epochs, target, "linear")


@pytest.mark.parametrize("target", [1.0, 1.5, -0.1])
def test_target_outside_unit_interval_raises(target):
    with pytest.raises(ValueError, match="target"):
        scheduled_fraction(0, 3, target)


def test_bad_epoch_and_schedule_raise():
    with pytest.raises(ValueError):
        scheduled_fraction(3, 3, 0.5)
    with pytest.raises(ValueError):
        scheduled_fraction(-1, 3, 0.5)
    with pytest.raises(ValueError, match="linear"):
        scheduled_fraction(0, 3, 0.5, "quadratic")


# ----------------------------------------------------------------------------- pruner
def _params(seed: int = 0) -> dict[str, nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a": nn.Parameter(torch.randn(10, 10, generator=g)),
        "b": nn.Parameter(torch.randn(7, 3, generator=g) * 0.1),  # small: pruned first
        "c": nn.Parameter(torch.randn(33, generator=g) * 3.0),
    }


def _zeros(t: torch.Tensor) -> int:
    return int((t == 0).sum())


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999])
def test_global_prunes_exactly_round_fraction_of_all_weights(fraction):
    params = _params()
    total = sum(p.numel() for p in params.values())
    original = torch.cat([p.detach().abs().flatten() for p in params.values()])
    pruner = MagnitudePruner(params)
    pruner.prune_to(fraction)
    count = round(fraction * total)
    mask = torch.cat([m.flatten() for m in pruner.masks.values()])
    assert int((~mask).sum()) == count
    assert sum(_zeros(p) for p in params.values()) == count
    # the pruned ones are exactly the smallest magnitudes (global ranking)
    if 0 < count < total:
        assert original[~mask].max() <= original[mask].min()
    report = pruner.report()
    assert report["global"]["zeros"] == count
    assert report["global"]["sparsity"] == pytest.approx(count / total)


def test_global_scope_ranks_across_tensors():
    params = _params()
    pruner = MagnitudePruner(params)
    pruner.prune_to(0.15)  # 24 of 154 weights: b holds the 21 smallest-scale ones
    sparsity = {k: v["sparsity"] for k, v in pruner.report()["tensors"].items()}
    assert sparsity["b"] > sparsity["a"] and sparsity["b"] > sparsity["c"]


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.85])
def test_per_tensor_scope_prunes_each_tensor_to_the_fraction(fraction):
    params = _params()
    originals = {k: p.detach().abs().clone() for k, p in params.items()}
    pruner = MagnitudePruner(params, scope="per_tensor")
    pruner.prune_to(fraction)
    for name, p in params.items():
        mask = pruner.masks[name]
        assert int((~mask).sum()) == round(fraction * p.numel())
        assert _zeros(p) == round(fraction * p.numel())
        assert originals[name][~mask].max() <= originals[name][mask].min()


def test_masks_are_cumulative():
    params = {"w": nn.Parameter(torch.arange(1.0, 11.0))}  # |w| = 1..10
    pruner = MagnitudePruner(params)
    pruner.prune_to(0.3)
    assert torch.equal(pruner.masks["w"][:3], torch.zeros(3, dtype=torch.bool))
    # other weights become smaller than anything pruned so far: the old ones stay pruned
    with torch.no_grad():
        params["w"][5:] = 0.01 * torch.arange(1.0, 6.0)
    first = pruner.masks["w"].clone()
    pruner.prune_to(0.5)
    mask = pruner.masks["w"]
    assert int((~mask).sum()) == 5
    assert not (mask & ~first).any(), "a pruned weight came back"
    assert torch.equal(~mask, torch.tensor([1, 1, 1, 0, 0, 1, 1, 0, 0, 0], dtype=torch.bool))
    # asking for less than what is already pruned keeps everything pruned
    pruner.prune_to(0.1)
    assert torch.equal(pruner.masks["w"], mask)
    assert _zeros(params["w"]) == 5


def test_prune_to_rejects_fractions_outside_unit_interval():
    pruner = MagnitudePruner(_params())
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError):
            pruner.prune_to(bad)
    with pytest.raises(ValueError, match="global"):
        MagnitudePruner(_params(), scope="layer")
    with pytest.raises(ValueError):
        MagnitudePruner({})


def test_masks_survive_adamw_with_weight_decay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    params = {"l0": model[0].weight, "l2": model[2].weight}
    pruner = MagnitudePruner(params)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    x = torch.randn(32, 6)
    y = torch.randn(32, 3)
    pruner.prune_to(0.3)
    masks = {k: m.clone() for k, m in pruner.masks.items()}
    for step in range(60):
        if step == 30:  # grow the masks mid-training, as the schedule does
            pruner.prune_to(0.6)
            grown = pruner.masks
            assert all(not (grown[k] & ~masks[k]).any() for k in masks)
            masks = {k: m.clone() for k, m in grown.items()}
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        # gradients on pruned weights are non-zero: Adam momentum would regrow them
        assert any(p.grad[~masks[k]].abs().sum() > 0 for k, p in params.items())
        optimizer.step()
        pruner.apply_()
        for k, p in params.items():
            assert (p.detach()[~masks[k]] == 0).all()
            assert (p.detach()[masks[k]] != 0).all()
    assert pruner.report()["global"]["zeros"] == sum(int((~m).sum()) for m in masks.values())


def test_works_with_fused_rnn_weights():
    torch.manual_seed(0)
    rnn = nn.RNN(2, 12, bias=False, nonlinearity="relu")
    pruner = MagnitudePruner({"W_ih": rnn.weight_ih_l0, "W_hh": rnn.weight_hh_l0})
    optimizer = torch.optim.AdamW(rnn.parameters(), lr=0.01)
    pruner.prune_to(0.75)
    mask_hh = pruner.masks["W_hh"].clone()
    x = torch.randn(5, 4, 2)
    for _ in range(10):
        out, _ = rnn(x)
        assert out.shape == (5, 4, 12) and torch.isfinite(out).all()
        optimizer.zero_grad()
        out.pow(2).mean().backward()
        optimizer.step()
        pruner.apply_()
        assert (rnn.weight_hh_l0.detach()[~mask_hh] == 0).all()
    # no torch.nn.utils.prune reparametrisation: plain parameters, no hooks, no *_orig
    names = dict(rnn.named_parameters())
    assert set(names) == {"weight_ih_l0", "weight_hh_l0"}
    assert isinstance(rnn.weight_hh_l0, nn.Parameter)
    assert not rnn._forward_pre_hooks
    assert not any(name.endswith("_mask") for name, _ in rnn.named_buffers())
    # the RNN's flat-weight views still alias the pruned parameters
    out_now, _ = rnn(x)
    manual = torch.zeros(4, 12)
    for t in range(5):
        manual = torch.relu(x[t] @ rnn.weight_ih_l0.T + manual @ rnn.weight_hh_l0.T)
    assert torch.allclose(out_now[-1], manual, atol=1e-5)


def test_report_counts_exact_zeros():
    params = {
        "x": nn.Parameter(torch.tensor([0.0, 1.0, -0.0, 1e-30])),
        "y": nn.Parameter(torch.tensor([[0.0, 2.0], [3.0, 4.0]])),
    }
    report = MagnitudePruner(params).report()
    assert report["tensors"]["x"] == {"numel": 4, "zeros": 2, "sparsity": 0.5}
    assert report["tensors"]["y"] == {"numel": 4, "zeros": 1, "sparsity": 0.25}
    assert report["global"] == {"numel": 8, "zeros": 3, "sparsity": 3 / 8}


def test_w_hh_sparsity_is_the_reports_measure_over_all_layers():
    """One definition of measured sparsity: the pruner's report and every W_hh_sparsity
    (one recurrent matrix, or several layers counted together) are ``measured_sparsity``."""
    layers = [torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 5.0]])]
    assert w_hh_sparsity(layers[:1]) == 0.5
    assert w_hh_sparsity(layers) == 5 / 8  # zeros over all entries, not the mean of 0.5 and 0.75
    params = {"W_hh": nn.Parameter(layers[0].clone())}
    assert MagnitudePruner(params).report() == measured_sparsity(params)


def test_state_dict_round_trip():
    params = _params()
    pruner = MagnitudePruner(params)
    pruner.prune_to(0.4)
    saved = pruner.state_dict()
    fresh_params = _params(seed=1)
    other = MagnitudePruner(fresh_params)
    other.load_state_dict(saved)
    for name, p in fresh_params.items():
        assert torch.equal(other.masks[name], saved[name])
        assert (p.detach()[~saved[name]] == 0).all()
    with pytest.raises(KeyError):
        other.load_state_dict({"a": saved["a"]})


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 16, bias=False)
        self.rnn = nn.RNN(2, 16, bias=False)
        self.decoder = nn.Linear(16, 8, bias=False)


def _lottery(seed: int):
    torch.manual_seed(123)
    net = _Net()
    pruner = MagnitudePruner(
        {"encoder": net.encoder.weight, "W_hh": net.rnn.weight_hh_l0, "decoder": net.decoder.weight}
    )
    pruner.prune_to(0.8)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    masks = {k: m.clone() for k, m in pruner.masks.items()}
    lottery_ticket_reinit(net, pruner, seed)
    return net, pruner, before, masks


def test_lottery_ticket_keeps_masks_and_reinitialises_survivors():
    net, pruner, before, masks = _lottery(seed=7)
    for name, mask in masks.items():
        assert torch.equal(pruner.masks[name], mask)
        assert torch.equal(pruner.params[name].detach() == 0, ~mask), "same zero pattern"
    for key, old in before.items():
        new = net.state_dict()[key]
        changed = new != old
        survivors = new != 0
        assert changed[survivors].float().mean() > 0.99, f"{key}: survivors not re-initialised"


def test_lottery_ticket_is_deterministic_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    net_a, *_ = _lottery(seed=7)
    torch.set_rng_state(state)
    net_b, *_ = _lottery(seed=7)
    net_c, *_ = _lottery(seed=8)
    for key, value in net_a.state_dict().items():
        assert torch.equal(value, net_b.state_dict()[key])
    assert any(not torch.equal(v, net_c.state_dict()[k]) for k, v in net_a.state_dict().items())
    # the caller's RNG stream does not depend on the re-initialisation
    torch.manual_seed(5)
    reference = torch.rand(3)
    torch.manual_seed(5)
    net = _Net()
    torch.manual_seed(5)
    lottery_ticket_reinit(net, MagnitudePruner({"w": net.encoder.weight}), seed=1)
    assert torch.equal(torch.rand(3), reference)
