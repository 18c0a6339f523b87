"""Navigation task: place cells, trajectory stream, model and decoding error."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import REPO
from geosparse.config import resolve
from geosparse.runs import new_run
from geosparse.tasks.navigation import (
    NavigationRNN,
    PlaceCells,
    TrajectoryGenerator,
    cross_entropy,
    decoding_error_cm,
)
from geosparse.tasks.navigation_training import TRAINING_ERROR_TRAJECTORIES

BOX = (2.2, 2.2)


def _cells(n: int = 32, dog: bool = True, seed: int = 0, box=BOX) -> PlaceCells:
    return PlaceCells(n, 0.12, 2.0, dog, box, seed=seed)


def _stream(
    seed: int = 1, chunk: int = 3, length: int = 12, batch: int = 8, cells: PlaceCells | None = None
) -> TrajectoryGenerator:
    return TrajectoryGenerator(cells or _cells(), length, batch, seed=seed, chunk=chunk)


def _same(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("velocity", "init_code", "position", "target_code"))


# ------------------------------------------------------------------------ place cells
@pytest.mark.parametrize("dog", [True, False])
def test_place_cell_codes_are_distributions(dog):
    cells = _cells(64, dog=dog)
    pos = (torch.rand(500, 2, generator=torch.Generator().manual_seed(2)) - 0.5) * 2.2
    code = cells.activation(pos)
    assert code.shape == (500, 64)
    assert (code >= 0).all()
    assert torch.allclose(code.sum(-1), torch.ones(500), atol=1e-5)
    # batched shapes (T, B, 2) -> (T, B, Np)
    assert cells.activation(pos.view(25, 20, 2)).shape == (25, 20, 64)
    # the most active cell is the nearest centre (DoG centre-surround keeps the peak)
    nearest = torch.cdist(pos, cells.centres).argmin(-1)
    assert (code.argmax(-1) == nearest).float().mean() > 0.95


@pytest.mark.parametrize("dog", [True, False])
def test_place_cell_code_is_the_softmax_of_squared_distances(dog):
    """The code equals the textbook formula on (..., Np, 2) differences, bit for bit."""
    cells = _cells(64, dog=dog)
    pos = (torch.rand(7, 9, 2, generator=torch.Generator().manual_seed(4)) - 0.5) * 2.2
    d2 = ((pos[..., None, :] - cells.centres) ** 2).sum(-1)
    expected = torch.softmax(-d2 / (2 * cells.sigma**2), dim=-1)
    if dog:
        expected = expected - torch.softmax(-d2 / (2 * cells.surround_scale * cells.sigma**2), dim=-1)
        expected = expected - expected.amin(dim=-1, keepdim=True)
        expected = expected / expected.sum(dim=-1, keepdim=True)
    assert torch.equal(cells.activation(pos), expected)


def test_place_cell_centres_are_seeded_and_inside_the_box():
    a, b, c = _cells(200, seed=0), _cells(200, seed=0), _cells(200, seed=1)
    assert torch.equal(a.centres, b.centres) and not torch.equal(a.centres, c.centres)
    assert a.centres.shape == (200, 2)
    assert (a.centres.abs() <= 1.1).all()
    wide = _cells(300, box=(4.0, 1.0))
    assert (wide.centres[:, 0].abs() <= 2.0).all() and (wide.centres[:, 1].abs() <= 0.5).all()
    assert wide.centres[:, 0].abs().max() > 1.0


# ------------------------------------------------------------------------ trajectories
def test_trajectories_stay_inside_the_box():
    cells = _cells(16)
    half = torch.tensor(BOX) / 2
    stream = TrajectoryGenerator(cells, 50, 200, seed=11, chunk=4)
    for _ in range(8):
        batch = stream.next_batch()
        start = batch.position[0] - batch.velocity[0]
        for pos in (batch.position, start):
            assert (pos.abs() <= half + 1e-6).all(), f"max |pos| = {float(pos.abs().max())}"


def test_batch_shapes():
    stream = _stream(length=12, batch=8)
    batch = stream.next_batch()
    assert batch.velocity.shape == (12, 8, 2)
    assert batch.position.shape == (12, 8, 2)
    assert batch.init_code.shape == (8, 32)
    assert batch.target_code.shape == (12, 8, 32)


def test_velocity_is_the_position_difference_and_init_code_the_start():
    cells = _cells()
    stream = _stream(length=15, batch=10, chunk=2, cells=cells)
    for _ in range(3):
        batch = stream.next_batch()
        steps = batch.position[1:] - batch.position[:-1]
        assert torch.allclose(batch.velocity[1:], steps, atol=1e-6)
        start = batch.position[0] - batch.velocity[0]
        assert torch.allclose(cells.activation(start), batch.init_code, atol=1e-6)
        assert torch.allclose(cells.activation(batch.position), batch.target_code)
        # integrating the velocities from the start reproduces the path
        assert torch.allclose(start + batch.velocity.cumsum(0), batch.position, atol=1e-5)
        assert (batch.velocity.norm(dim=-1) > 0).float().mean() > 0.99


def test_speed_and_turning_statistics():
    """Rayleigh speed (scale 0.13 * 2 pi m/s) and N(0, 11.52 rad/s) turns, dt = 0.02 s."""
    stream = TrajectoryGenerator(_cells(16), 50, 200, seed=4, chunk=1)
    batch = stream.next_batch()
    v = batch.velocity
    rayleigh_mean = 0.13 * 2 * math.pi * math.sqrt(math.pi / 2) * 0.02  # 2.05 cm per step
    # slightly lower: the animal slows down to 25 % near the walls
    assert 0.93 * rayleigh_mean < float(v.norm(dim=-1).mean()) < 1.01 * rayleigh_mean
    angle = torch.atan2(v[..., 1], v[..., 0])
    turn = torch.remainder(angle[1:] - angle[:-1] + math.pi, 2 * math.pi) - math.pi
    inside = (batch.position[:-1].abs() < 1.0).all(-1) & (batch.position[1:].abs() < 1.0).all(-1)
    median_turn = float(turn[inside].abs().median())  # away from walls: |N(0, 0.02 * 11.52)|
    assert median_turn == pytest.approx(0.6745 * 0.02 * 11.52, rel=0.08)


def test_stream_is_deterministic_and_independent_of_the_global_rng():
    torch.manual_seed(0)
    a = _stream(seed=5)
    batches_a = [a.next_batch() for _ in range(5)]
    torch.manual_seed(999)
    torch.rand(10)
    b = _stream(seed=5)
    batches_b = [b.next_batch() for _ in range(5)]
    assert all(_same(x, y) for x, y in zip(batches_a, batches_b, strict=True))
    # generating data does not touch the global RNG
    state = torch.get_rng_state()
    c = _stream(seed=5)
    for _ in range(4):
        c.next_batch()
    assert torch.equal(torch.get_rng_state(), state)
    # consecutive batches differ, other seeds differ
    assert not _same(batches_a[0], batches_a[1])
    assert not _same(_stream(seed=6).next_batch(), batches_a[0])


@pytest.mark.parametrize("consumed", [0, 1, 2, 3, 4, 6, 7])
def test_state_dict_resumes_the_stream_exactly(consumed):
    """Resume after any number of batches: mid-chunk and at a chunk boundary (chunk = 3)."""
    original = _stream(seed=21, chunk=3)
    for _ in range(consumed):
        original.next_batch()
    state = original.state_dict()
    expected = [original.next_batch() for _ in range(5)]
    resumed = _stream(seed=1234, chunk=3)  # another seed: the state alone must decide
    resumed.next_batch()
    resumed.load_state_dict(state)
    got = [resumed.next_batch() for _ in range(5)]
    for i, (x, y) in enumerate(zip(expected, got, strict=True)):
        assert _same(x, y), f"batch {i} after resuming at {consumed} differs"


def test_state_dict_survives_torch_save(tmp_path):
    original = _stream(seed=3, chunk=4)
    for _ in range(6):
        original.next_batch()
    torch.save(original.state_dict(), tmp_path / "s.pt")
    expected = original.next_batch()
    resumed = _stream(seed=3, chunk=4)
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert _same(resumed.next_batch(), expected)


# ------------------------------------------------------------------------ decoding
def _grid_cells() -> PlaceCells:
    cells = _cells(6)
    cells.centres = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 0.3], [-0.5, -0.5], [0.9, 0.9], [-0.9, 0.6]])
    return cells


def test_decode_is_the_mean_of_the_three_most_active_centres():
    cells = _grid_cells()
    logits = torch.tensor([[5.0, 4.0, 3.0, -1.0, 0.0, 2.0]])
    assert torch.allclose(cells.decode(logits), torch.tensor([[0.1, 0.1]]))
    logits = torch.tensor([[0.0, 0.0, 0.0, 9.0, 8.0, 7.0]])
    assert torch.allclose(cells.decode(logits), torch.tensor([[-0.5 / 3, 1.0 / 3]]))


def test_decoding_error_is_zero_when_the_top_three_mean_is_the_position():
    cells = _grid_cells()
    logits = torch.tensor([5.0, 4.0, 3.0, -1.0, 0.0, 2.0]).expand(4, 2, 6)  # (T, B, Np)
    position = torch.full((4, 2, 2), 0.1)
    assert float(decoding_error_cm(logits, position, cells)) == pytest.approx(0.0, abs=1e-5)


def test_decoding_error_is_in_centimetres():
    cells = _grid_cells()
    logits = torch.tensor([5.0, 4.0, 3.0, -1.0, 0.0, 2.0]).expand(3, 5, 6)
    position = torch.tensor([0.1 + 0.03, 0.1 + 0.04]).expand(3, 5, 2)  # 5 cm away
    assert float(decoding_error_cm(logits, position, cells)) == pytest.approx(5.0, abs=1e-4)
    # mean over (T, B): half the entries exact, half 5 cm off -> 2.5 cm
    mixed = position.clone()
    mixed[:, :2] = 0.1
    mixed[0, 2:] = 0.1
    expected = 5.0 * (3 * 5 - 3 * 2 - 3) / 15
    assert float(decoding_error_cm(logits, mixed, cells)) == pytest.approx(expected, abs=1e-4)


def test_cross_entropy_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 7, generator=g)
    target = torch.softmax(torch.randn(4, 3, 7, generator=g), -1)
    by_hand = 0.0
    for t in range(4):
        for b in range(3):
            p = torch.softmax(logits[t, b], -1)
            by_hand -= float((target[t, b] * torch.log(p)).sum())
    assert float(cross_entropy(logits, target)) == pytest.approx(by_hand / 12, rel=1e-5)
    # minimised (= entropy of the target) when the read-out predicts the target
    entropy = float(-(target * target.log()).sum(-1).mean())
    assert float(cross_entropy(target.log(), target)) == pytest.approx(entropy, rel=1e-5)


def test_navigation_rnn_shapes_and_no_biases():
    torch.manual_seed(0)
    model = NavigationRNN(10, 24)
    assert all("bias" not in name for name, _ in model.named_parameters())
    velocity = torch.randn(6, 4, 2)
    init_code = torch.softmax(torch.randn(4, 10), -1)
    logits = model(velocity, init_code)
    assert logits.shape == (6, 4, 10)
    weights = model.prunable()
    assert set(weights) == {"encoder", "W_ih", "W_hh", "decoder"}
    assert weights["W_hh"].shape == (24, 24) and weights["W_ih"].shape == (24, 2)
    assert weights["encoder"].shape == (24, 10) and weights["decoder"].shape == (10, 24)
    # ReLU Elman recurrence from h0 = encoder(init_code)
    h = model.encoder(init_code)
    for t in range(6):
        h = torch.relu(velocity[t] @ weights["W_ih"].T + h @ weights["W_hh"].T)
    assert torch.allclose(logits[-1], model.decoder(h), atol=1e-5)
    assert math.isfinite(float(logits.detach().sum()))


def test_the_training_error_is_decoded_on_the_first_trajectories_of_the_batch():
    """The logged training error covers TRAINING_ERROR_TRAJECTORIES trajectories of each
    batch (every time step); the loss covers all of them."""
    config = resolve(
        REPO / "config" / "navigation" / "smoke.yaml",
        "navigation",
        [f"trajectory.batch_size={3 * TRAINING_ERROR_TRAJECTORIES}"],
    )
    run = new_run(config, seed=0, device=torch.device("cpu"))
    run.task.start_phase("sparse")
    state = run.task.stream.state_dict()
    stats = run.task.train_step(run.model)
    run.task.stream.load_state_dict(state)
    batch = run.task.stream.next_batch()
    with torch.no_grad():
        logits = run.model(batch.velocity, batch.init_code)
    some = slice(0, TRAINING_ERROR_TRAJECTORIES)
    expected = decoding_error_cm(logits[:, some], batch.position[:, some], run.task.place_cells)
    assert torch.equal(stats["error_cm"], expected)
    assert not torch.equal(stats["error_cm"], decoding_error_cm(logits, batch.position, run.task.place_cells))
    assert torch.equal(stats["task_loss"], cross_entropy(logits, batch.target_code))
