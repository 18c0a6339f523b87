"""Navigation / path integration (Sorscher et al. set-up, the paper "Navigation").

Units: positions in metres, box centred at the origin; velocities are displacements per
time step (metres / step, dt = 0.02 s); decoding error is reported in centimetres.
Tensors are time-major: ``(T, B, ...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from geosparse.precision import note_recurrence, run_rnn
from geosparse.recurrence import batched_recurrence_applies, relu_rnn
from geosparse.runio import generator_state

DT = 0.02
"""Time step (s)."""
ROTATION_SIGMA = 5.76 * 2
"""Std of the rotation velocity (rad/s)."""
SPEED_SCALE = 0.13 * 2 * math.pi
"""Rayleigh scale of the forward speed (m/s)."""
BORDER = 0.03
"""Distance to a wall (m) under which the animal turns away and slows to 25 %."""


class PlaceCells:
    """Difference-of-Gaussians place cells with uniformly random centres.

    Args:
        n: number of cells (Np). sigma: tuning width (m). surround_scale: variance
        ratio of the surround Gaussian. dog: subtract the surround. box: (width, height)
        in m. seed: seeds the centres (drawn on the CPU). device: where the codes live.
    """

    def __init__(
        self,
        n: int,
        sigma: float,
        surround_scale: float,
        dog: bool,
        box: tuple[float, float],
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n, self.sigma, self.surround_scale, self.dog = n, sigma, surround_scale, dog
        self.box = box
        # drawn on the CPU so that the centres are the same on every device
        unit = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed))
        self.centres = ((2 * unit - 1) * torch.tensor(box) / 2).to(device)  # (Np, 2)

    def activation(self, pos: torch.Tensor) -> torch.Tensor:
        """Place-cell code ``(..., Np)`` of positions ``(..., 2)``; rows sum to 1."""
        # squared distances (..., Np) from the two coordinates separately: no (..., Np, 2)
        # temporary and no reduction over a size-2 axis (2.8 -> 0.5 ms per default batch)
        dx = pos[..., 0, None] - self.centres[:, 0]
        dy = pos[..., 1, None] - self.centres[:, 1]
        d2 = dx * dx + dy * dy
        out = torch.softmax(d2 / (-2 * self.sigma**2), dim=-1)
        if self.dog:
            out = out - torch.softmax(d2 / (-2 * self.surround_scale * self.sigma**2), dim=-1)
            out = out - out.amin(dim=-1, keepdim=True)
            out = out / out.sum(dim=-1, keepdim=True)
        return out

    def decode(self, scores: torch.Tensor, k: int = 3) -> torch.Tensor:
        """Position ``(..., 2)``: mean centre of the ``k`` highest of ``scores (..., Np)``."""
        return self.centres[torch.topk(scores, k, dim=-1).indices].mean(-2)


@dataclass
class Batch:
    """One batch of trajectories (time-major).

    velocity: (T, B, 2) displacement per step (m). init_code: (B, Np) place code of the
    start. position: (T, B, 2) true positions (m). target_code: (T, B, Np).
    """

    velocity: torch.Tensor
    init_code: torch.Tensor
    position: torch.Tensor
    target_code: torch.Tensor


class TrajectoryGenerator:
    """Random-walk trajectories in a box, on the place cells' device.

    Trajectories are drawn ``chunk`` batches at a time (one vectorised walk over
    ``chunk * batch_size`` animals) and served batch by batch, which amortises the
    per-time-step kernel launches on a GPU. The random numbers come from a CPU
    ``torch.Generator`` (one draw per chunk, then moved to the device), so the stream is
    a pure function of the seed on every device: a GPU walks the same random numbers as a
    CPU (positions equal up to the last bits of sin/cos), and ``state_dict`` holds a CPU
    generator state that any machine can load. ``state_dict`` / ``load_state_dict``
    restore the stream exactly mid-chunk.
    """

    def __init__(
        self,
        place_cells: PlaceCells,
        sequence_length: int,
        batch_size: int,
        seed: int,
        chunk: int = 32,
    ) -> None:
        self.place_cells = place_cells
        self.sequence_length, self.batch_size, self.chunk = sequence_length, batch_size, chunk
        self.device = place_cells.centres.device
        self.generator = torch.Generator().manual_seed(seed)  # on the CPU, whatever the device
        self._chunk_start_state = self.generator.get_state()
        self._cursor = chunk  # forces a fresh chunk on first use
        self._positions: torch.Tensor | None = None
        self._steps: torch.Tensor | None = None

    def _walk(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Simulate ``n`` animals: positions ``(T + 2, n, 2)`` (m), headings ``(T + 2, n)``
        (rad) and speeds ``(T + 2, n)`` (m per step; the last one is 0)."""
        g, dev = self.generator, self.device
        width, height = self.place_cells.box
        steps = self.sequence_length + 1
        half = torch.tensor([width / 2, height / 2], device=dev)
        # every random number of the chunk, drawn on the CPU in a fixed order, then moved
        draws = (torch.rand(n, 2, generator=g), torch.rand(n, generator=g))
        draws += (torch.randn(steps, n, generator=g), torch.rand(steps, n, generator=g))
        start, heading, normal, uniform = (draw.to(dev) for draw in draws)
        pos = (2 * start - 1) * half
        hd = 2 * math.pi * heading
        turns = ROTATION_SIGMA * normal
        uniform = uniform.clamp_min(1e-12)
        speeds = SPEED_SCALE * torch.sqrt(-2 * torch.log(uniform))  # Rayleigh
        wall_angles = torch.arange(4, device=dev) * (math.pi / 2)
        positions, headings, velocity = [pos], [hd], []
        for t in range(steps):
            walls = torch.stack([half[0] - pos[:, 0], half[1] - pos[:, 1], half[0] + pos[:, 0], half[1] + pos[:, 1]])
            d_wall, nearest = walls.min(dim=0)
            a_wall = (
                torch.remainder(torch.remainder(hd, 2 * math.pi) - wall_angles[nearest] + math.pi, 2 * math.pi)
                - math.pi
            )
            near = (d_wall < BORDER) & (a_wall.abs() < math.pi / 2)
            turn = torch.where(near, torch.sign(a_wall) * (math.pi / 2 - a_wall.abs()), 0.0)
            v = torch.where(near, 0.25 * speeds[t], speeds[t]) * DT
            pos = pos + v[:, None] * torch.stack([torch.cos(hd), torch.sin(hd)], dim=-1)
            # a fast step can still cross a wall (the turn only acts afterwards): stop there
            pos = torch.maximum(torch.minimum(pos, half), -half)
            hd = hd + turn + DT * turns[t]
            positions.append(pos)
            headings.append(hd)
            velocity.append(v)
        velocity.append(torch.zeros_like(v))
        return torch.stack(positions), torch.stack(headings), torch.stack(velocity)

    def _refill(self) -> None:
        self._chunk_start_state = self.generator.get_state()
        positions, _, _ = self._walk(self.chunk * self.batch_size)
        self._positions = positions  # (T + 2, chunk * B, 2)
        # velocity input = actual displacement (also at a wall, where the step is cut short)
        self._steps = positions[2:] - positions[1:-1]  # (T, chunk * B, 2)
        self._cursor = 0

    def next_batch(self) -> Batch:
        """The next batch of the stream."""
        if self._cursor >= self.chunk:
            self._refill()
        sl = slice(self._cursor * self.batch_size, (self._cursor + 1) * self.batch_size)
        self._cursor += 1
        position = self._positions[2:, sl]
        return Batch(
            velocity=self._steps[:, sl],
            init_code=self.place_cells.activation(self._positions[1, sl]),
            position=position,
            target_code=self.place_cells.activation(position),
        )

    def state_dict(self) -> dict:
        # At a chunk boundary the next chunk starts from the generator's current state,
        # not from the start of the exhausted chunk (which would replay it after loading).
        exhausted = self._cursor >= self.chunk
        start = self.generator.get_state() if exhausted else self._chunk_start_state
        return {"chunk_start_state": start, "cursor": self._cursor}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(generator_state(state["chunk_start_state"]))
        cursor = int(state["cursor"])
        if cursor < self.chunk:
            self._refill()
        self._cursor = cursor


GROUPS = ("encoder", "W_ih", "W_hh", "decoder")
"""Prunable weight matrices (``pruning.tensors``), by their paper names."""


class NavigationRNN(nn.Module):
    """Elman RNN without biases: encoder(Np -> Ng) sets h0, RNN(2 -> Ng), decoder(Ng -> Np).

    The weights live in ``nn.RNN`` (``rnn.weight_ih_l0``, ``rnn.weight_hh_l0``). On a CPU
    without autocast a ReLU recurrence runs through ``geosparse.recurrence.relu_rnn``
    (same outputs, gradients equal up to float32 rounding, faster backward); elsewhere
    through ``nn.RNN`` (cuDNN on CUDA). ``batched_recurrence = False`` forces ``nn.RNN``
    (benchmarks/train_step.py compares both).
    """

    def __init__(self, n_place_cells: int, n_hidden: int, activation: str = "relu") -> None:
        super().__init__()
        self.encoder = nn.Linear(n_place_cells, n_hidden, bias=False)
        self.rnn = nn.RNN(2, n_hidden, nonlinearity=activation, bias=False)
        self.decoder = nn.Linear(n_hidden, n_place_cells, bias=False)
        self.batched_recurrence = True

    def hidden(self, velocity: torch.Tensor, init_code: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(T, B, Ng)`` from velocity ``(T, B, 2)`` and init ``(B, Np)``."""
        h0 = self.encoder(init_code)
        if self.batched_recurrence and batched_recurrence_applies(self.rnn, velocity):
            return note_recurrence(self, relu_rnn(velocity, h0, self.rnn.weight_ih_l0, self.rnn.weight_hh_l0))
        hidden, _ = run_rnn(self.rnn, velocity, h0[None])
        return note_recurrence(self, hidden)

    def forward(self, velocity: torch.Tensor, init_code: torch.Tensor) -> torch.Tensor:
        """Read-out logits ``(T, B, Np)`` from velocity ``(T, B, 2)`` and init ``(B, Np)``."""
        return self.decoder(self.hidden(velocity, init_code))

    def prunable(self, groups: list[str] | tuple[str, ...] = GROUPS) -> dict[str, nn.Parameter]:
        """The chosen weight matrices (``pruning.tensors``) by their paper names, in
        ``groups`` order."""
        weights = {
            "encoder": self.encoder.weight,
            "W_ih": self.rnn.weight_ih_l0,
            "W_hh": self.rnn.weight_hh_l0,
            "decoder": self.decoder.weight,
        }
        unknown = set(groups) - set(weights)
        if unknown:
            raise ValueError(f"unknown weight group(s) {sorted(unknown)}; allowed values: {list(GROUPS)}")
        return {name: weights[name] for name in groups}


def cross_entropy(logits: torch.Tensor, target_code: torch.Tensor) -> torch.Tensor:
    """Mean over (T, B) of ``-sum_j y_j log softmax(logits)_j`` (nats)."""
    return -(target_code * torch.log_softmax(logits, dim=-1)).sum(-1).mean()


def decoding_error_cm(logits: torch.Tensor, position: torch.Tensor, place_cells: PlaceCells) -> torch.Tensor:
    """Mean Euclidean error (cm) of the top-3 decoded positions vs the true ``(T, B, 2)``."""
    decoded = place_cells.decode(logits)
    return 100.0 * torch.linalg.vector_norm(decoded - position, dim=-1).mean()
