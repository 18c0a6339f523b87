"""Gradual magnitude pruning with cumulative masks, sparsity accounting, lottery tickets.

Masks are boolean tensors (True = kept) applied *in place* to the parameters after every
optimizer step (``apply_``), so pruned weights are exactly zero at all times and never
regrow - also under AdamW's decoupled weight decay and momentum. Parameters are never
reparametrised (unlike ``torch.nn.utils.prune``, which replaces a weight by
``weight_orig * weight_mask``): the model's ``state_dict`` stays the plain one, so a
checkpoint loads into an unpruned model and the sparse export reads exact zeros.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

SCHEDULES = ("linear", "cubic")
SCOPES = ("global", "per_tensor")


@torch.no_grad()
def measured_sparsity(tensors: Mapping[str, torch.Tensor]) -> dict:
    """The one definition of measured sparsity: exact zeros per tensor (``tensors``) and
    over all of them together (``global``), each as ``{numel, zeros, sparsity}``. The
    pruner's ``report`` and every ``W_hh_sparsity`` are this."""
    report = {name: {"numel": t.numel(), "zeros": int((t == 0).sum())} for name, t in tensors.items()}
    for entry in report.values():
        entry["sparsity"] = entry["zeros"] / entry["numel"]
    numel, zeros = sum(e["numel"] for e in report.values()), sum(e["zeros"] for e in report.values())
    return {"tensors": report, "global": {"numel": numel, "zeros": zeros, "sparsity": zeros / numel}}


def w_hh_sparsity(recurrent: list[torch.Tensor]) -> float:
    """Measured sparsity of a model's recurrent matrices together (one per layer)."""
    return measured_sparsity({f"W_hh_l{i}": w for i, w in enumerate(recurrent)})["global"]["sparsity"]


def scheduled_fraction(epoch: int, epochs: int, target: float, schedule: str = "linear") -> float:
    """Fraction to prune *before* 0-based ``epoch`` of ``epochs``.

    linear: ``target * e / (E - 1)`` so the last epoch trains at the full target
    (the paper). cubic: ``target * (1 - (1 - e / (E - 1)) ** 3)`` (Zhu & Gupta 2017),
    which prunes fast early and gently near the target. One epoch means the target.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown pruning schedule {schedule!r}; allowed values: {list(SCHEDULES)}")
    if not 0 <= target < 1:
        raise ValueError(f"target sparsity must be in [0, 1), got {target!r}")
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, {epochs}), got {epoch}")
    progress = 1.0 if epochs == 1 else epoch / (epochs - 1)
    if schedule == "cubic":
        progress = 1.0 - (1.0 - progress) ** 3
    return target * progress


class MagnitudePruner:
    """Cumulative unstructured magnitude pruning over a named set of weight tensors.

    Args:
        params: name -> parameter to prune (e.g. ``{"W_hh": rnn.weight_hh_l0, ...}``).
        scope: ``global`` ranks all weights together (the paper); ``per_tensor`` prunes
            each tensor to the same fraction.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], scope: str = "global") -> None:
        if scope not in SCOPES:
            raise ValueError(f"unknown pruning scope {scope!r}; allowed values: {list(SCOPES)}")
        if not params:
            raise ValueError("MagnitudePruner needs at least one parameter")
        self.params = dict(params)
        self.scope = scope
        self.masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in self.params.items()}

    @torch.no_grad()
    def prune_to(self, fraction: float) -> None:
        """Grow the masks so that ``round(fraction * numel)`` weights are pruned.

        Counts are over all tensors (``global``) or per tensor (``per_tensor``). Already
        pruned weights stay pruned; the smallest ``|w|`` among the kept ones go next.
        """
        if not 0 <= fraction < 1:
            raise ValueError(f"pruning fraction must be in [0, 1), got {fraction!r}")
        groups = [list(self.params)] if self.scope == "global" else [[n] for n in self.params]
        for names in groups:
            scores = torch.cat(
                [torch.where(self.masks[n], self.params[n].detach().abs(), -1.0).flatten() for n in names]
            )
            already = int((scores < 0).sum())
            count = max(round(fraction * scores.numel()), already)
            keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
            if count:
                keep[torch.topk(scores, count, largest=False, sorted=False).indices] = False
            for n, part in zip(names, keep.split([self.params[n].numel() for n in names]), strict=True):
                self.masks[n] = part.view_as(self.masks[n])
        self.apply_()

    @torch.no_grad()
    def apply_(self) -> None:
        """Zero every pruned weight in place (call after each optimizer step)."""
        for name, p in self.params.items():
            p.mul_(self.masks[name])

    def report(self) -> dict:
        """Measured sparsity of the pruned tensors (``measured_sparsity``)."""
        return measured_sparsity(self.params)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: mask.clone() for name, mask in self.masks.items()}

    def load_state_dict(self, masks: Mapping[str, torch.Tensor]) -> None:
        if set(masks) != set(self.masks):
            raise KeyError(f"mask names {sorted(masks)} do not match {sorted(self.masks)}")
        for name, mask in masks.items():
            self.masks[name] = mask.to(device=self.params[name].device, dtype=torch.bool)
        self.apply_()


@torch.no_grad()
def lottery_ticket_reinit(model: nn.Module, pruner: MagnitudePruner, seed: int) -> None:
    """Re-initialise every submodule of ``model`` at random (seeded), keep the masks.

    Each module's own ``reset_parameters`` runs on a CPU copy of the model under a
    forked, seeded CPU RNG, and the new parameters of the modules that have one are
    copied onto ``model``'s device: the result depends on ``seed`` alone, is the same on
    every device, and the caller's RNG state (CPU and CUDA) is untouched.
    """
    fresh = copy.deepcopy(model).to_empty(device="cpu")
    pairs = [
        (original, module)
        for original, module in zip(model.modules(), fresh.modules(), strict=True)
        if hasattr(module, "reset_parameters")
    ]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _, module in pairs:
            module.reset_parameters()
    for original, module in pairs:
        for target, source in zip(original.parameters(recurse=False), module.parameters(recurse=False), strict=True):
            target.copy_(source)
    pruner.apply_()
