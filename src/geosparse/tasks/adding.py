"""The adding problem (the paper, "Adding problem"; paper v2).

Each sample is a sequence of ``length`` steps with two input channels: channel 0 holds
values uniform in [0, 1), channel 1 is 1 at exactly two (uniformly chosen, distinct)
positions and 0 elsewhere. The target is the sum of the two marked values. Predicting
the constant 1 (the target's mean) has MSE Var(U + U') = 1/6 ~ 0.167: the baseline.
Tensors are time-major: inputs ``(T, N, 2)``, targets ``(N,)``.
"""

from __future__ import annotations

import torch
from torch import nn

from geosparse.precision import note_recurrence

BASELINE_MSE = 1 / 6
"""MSE of always predicting 1 (the paper: 0.167)."""
GROUPS = ("i2h", "h2o")
"""Prunable weight matrices."""


def adding_data(n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples from ``generator`` (no global RNG): inputs ``(T, n, 2)``, targets ``(n,)``."""
    if length < 2:
        raise ValueError(f"sequence length must be >= 2 to mark two positions, got {length}")
    device = generator.device
    values = torch.rand(n, length, generator=generator, device=device)
    positions = torch.rand(n, length, generator=generator, device=device).topk(2, dim=1).indices
    marks = torch.zeros(n, length, device=device).scatter_(1, positions, 1.0)
    targets = (values * marks).sum(dim=1)
    return torch.stack([values, marks], dim=-1).transpose(0, 1).contiguous(), targets


class AddingRNN(nn.Module):
    """Elman RNN ``h_t = act(i2h([x_t, h_{t-1}]))`` with ``h_0 = 0``, read-out ``h2o(h_T)``.

    i2h: Linear(2 + H -> H) (its last H columns are W_hh), h2o: Linear(H -> 1).
    """

    def __init__(self, n_hidden: int, activation: str = "relu", n_inputs: int = 2) -> None:
        super().__init__()
        self.n_inputs, self.n_hidden = n_inputs, n_hidden
        self.i2h = nn.Linear(n_inputs + n_hidden, n_hidden)
        self.h2o = nn.Linear(n_hidden, 1)
        self.activation = {"relu": torch.relu, "tanh": torch.tanh}[activation]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predictions ``(N,)`` from inputs ``(T, N, 2)``."""
        hidden = inputs.new_zeros(inputs.size(1), self.n_hidden)
        for x in inputs:
            hidden = self.activation(self.i2h(torch.cat([x, hidden], dim=1)))
        return self.h2o(note_recurrence(self, hidden)).squeeze(1)

    def recurrent_weight(self) -> torch.Tensor:
        """W_hh, the ``(H, H)`` hidden-to-hidden block of i2h (a view)."""
        return self.i2h.weight[:, self.n_inputs :]

    def prunable(self, groups: list[str] | tuple[str, ...] = GROUPS) -> dict[str, nn.Parameter]:
        """The chosen weight matrices by name (``i2h``, ``h2o``)."""
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown weight group(s) {sorted(unknown)}; allowed values: {list(GROUPS)}")
        return {name: getattr(self, name).weight for name in groups}
