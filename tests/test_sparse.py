"""Sparse inference: equivalence to the masked dense model, exact permutations, block
density, export round trip and CLI errors (all CPU, tiny sizes)."""

from __future__ import annotations

import json

import pytest
import torch
from sparse_helpers import hilbert_order, synthetic_mask

from conftest import cli_args
from geosparse.cli import main
from geosparse.moduli import get_space
from geosparse.runs import load_finished, new_run
from geosparse.sparse import (
    SparseNavigationRNN,
    block_density,
    geometry_order,
    load_sparse,
    permute_weights,
)
from geosparse.tasks.navigation import NavigationRNN

NG, NP = 64, 16


def _model(seed: int = 0) -> tuple[NavigationRNN, dict[str, torch.Tensor], torch.Tensor]:
    """A NavigationRNN with a geometric 90 % W_hh mask and 50 % masks elsewhere."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = NavigationRNN(NP, NG)
    w_mask, positions = synthetic_mask(NG, 0.1, "torus", seed=seed)
    masks = {name: torch.rand(p.shape, generator=g) < 0.5 for name, p in model.prunable().items()}
    masks["W_hh"] = w_mask
    masks["W_ih"] = torch.ones_like(masks["W_ih"])
    with torch.no_grad():
        for name, p in model.prunable().items():
            p.mul_(masks[name])
        model.rnn.weight_hh_l0.mul_(3.0)  # keep activity alive over the sequence
    return model, masks, positions


def _inputs(batch: int, steps: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 0.05 * torch.randn(steps, batch, 2, generator=g), torch.rand(batch, NP, generator=g)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = float(expected.abs().max())
    assert scale > 0
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def _weights(model: NavigationRNN) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.prunable().items()}


@pytest.mark.parametrize("layout", ["dense", "csr", "bsr"])
@pytest.mark.parametrize("order", ["none", "geometry"])
@pytest.mark.parametrize("batch", [1, 5])
def test_sequence_equals_masked_dense_model(layout, order, batch):
    model, masks, positions = _model()
    velocity, code = _inputs(batch)
    with torch.no_grad():
        expected = model(velocity, code)
    sparse = SparseNavigationRNN.from_dense(_weights(model), masks, layout, order, positions, "torus", blocksize=16)
    assert sparse.layouts()["W_hh"] == layout
    actual = sparse.sequence(velocity, code)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    _close(actual, expected)


@pytest.mark.parametrize("layout", ["dense", "csr", "bsr"])
@pytest.mark.parametrize("batch", [1, 5])
def test_step_equals_masked_dense_step(layout, batch):
    model, masks, positions = _model(seed=3)
    sparse = SparseNavigationRNN.from_dense(_weights(model), masks, layout, "geometry", positions, "torus", 16)
    perm = sparse.permutation
    g = torch.Generator().manual_seed(2)
    h, x = torch.rand(batch, NG, generator=g), torch.randn(batch, 2, generator=g)
    w_hh, w_ih = model.rnn.weight_hh_l0.detach(), model.rnn.weight_ih_l0.detach()
    expected = torch.relu(h @ w_hh.T + x @ w_ih.T)
    _close(sparse.step(h[:, perm], x), expected[:, perm])
    code = torch.rand(batch, NP, generator=g)
    _close(sparse.init_hidden(code), model.encoder(code).detach()[:, perm])
    _close(sparse.readout(h[:, perm]), model.decoder(h).detach())


def test_sparse_io_matrices_and_memory():
    model, masks, _ = _model()
    sparse = SparseNavigationRNN.from_dense(_weights(model), masks, "csr")
    # 50 % dense encoder / decoder do not pay as CSR; W_ih stays dense
    assert sparse.layouts() == {"encoder": "dense", "W_ih": "dense", "W_hh": "csr", "decoder": "dense"}
    nnz = int(masks["W_hh"].sum())
    assert sparse.nbytes()["W_hh"] == nnz * 8 + (NG + 1) * 4  # float32 values, int32 indices
    assert sparse.stored_nbytes()["W_hh"] == nnz * 6 + (NG + 1) * 4  # int16 column indices on disk
    thin = SparseNavigationRNN.from_dense(_weights(model), masks, "csr", io_max_density=0.6)
    assert thin.layouts()["encoder"] == thin.layouts()["decoder"] == "csr"


def test_permutation_is_exact():
    model, _, positions = _model(seed=5)
    perm = geometry_order(positions, "torus")
    assert sorted(perm.tolist()) == list(range(NG))
    assert not torch.equal(perm, torch.arange(NG))
    permuted = NavigationRNN(NP, NG)
    new = permute_weights(_weights(model), perm)
    with torch.no_grad():
        for name, p in permuted.prunable().items():
            p.copy_(new[name])
        velocity, code = _inputs(3)
        _close(permuted(velocity, code), model(velocity, code))
        hidden, _ = model.rnn(velocity, model.encoder(code)[None])
        hidden_p, _ = permuted.rnn(velocity, permuted.encoder(code)[None])
        _close(hidden_p, hidden[..., perm])
    with pytest.raises(ValueError, match="not a permutation"):
        permute_weights(_weights(model), torch.zeros(NG, dtype=torch.long))


def test_geometry_orders_cover_every_space():
    g = torch.Generator().manual_seed(0)
    for name in ("torus", "torus6", "klein", "circle", "sphere", "s3", "r3"):
        space = get_space(name)
        perm = geometry_order(space.sample(100, g), space)
        assert sorted(perm.tolist()) == list(range(100)), name
    circle = get_space("circle").sample(50, g)
    angles = torch.atan2(circle[:, 1], circle[:, 0])[geometry_order(circle, "circle")]
    assert bool((angles.diff() >= 0).all())
    assert sorted(hilbert_order(get_space("torus").sample(64, g), "torus").tolist()) == list(range(64))
    with pytest.raises(ValueError, match="no positions"):
        geometry_order(circle, "none")


def test_block_density_on_hand_made_masks():
    assert block_density(torch.eye(8), 2) == 0.25  # 4 diagonal blocks of 16
    assert block_density(torch.eye(8), 4) == 0.5
    assert block_density(torch.eye(8), 1) == 8 / 64
    assert block_density(torch.zeros(6, 6), 3) == 0.0
    assert block_density(torch.ones(6, 6), 3) == 1.0
    one = torch.zeros(5, 5)
    one[4, 4] = 1.0  # ragged 3 x 3 grid of 2 x 2 tiles; the corner tile counts
    assert block_density(one, 2) == pytest.approx(1 / 9)
    band = (torch.arange(8)[:, None] - torch.arange(8)[None, :]).abs() <= 1
    assert block_density(band, 4) == 1.0 and block_density(band, 2) == pytest.approx(10 / 16)
    rect = torch.zeros(4, 8)
    rect[0, 7] = 1
    assert block_density(rect, 4) == 0.5
    with pytest.raises(ValueError):
        block_density(torch.eye(4), 0)


def test_geometry_ordering_helps_torus_mask_not_permuted_control():
    n, b = 512, 16
    mask, positions = synthetic_mask(n, 0.1, "torus")
    assert int(mask.sum()) == round(0.1 * n * n)
    perm = geometry_order(positions, "torus")
    before, after = block_density(mask, b), block_density(mask[perm][:, perm], b)
    assert before > 0.95 and after < 0.5 * before
    control, positions = synthetic_mask(n, 0.1, "torus", permute=True)
    perm = geometry_order(positions, "torus")
    assert block_density(control[perm][:, perm], b) > 0.95


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse") / "run"
    assert main(cli_args(out, "model.n_hidden=64", "place_cells.n=16")) == 0
    return out


@pytest.mark.parametrize("layout,order", [("csr", "none"), ("bsr", "geometry")])
def test_export_round_trip(trained_run, tmp_path, layout, order):
    out = tmp_path / "model.pt"
    args = [
        "export",
        "--run",
        str(trained_run),
        "--out",
        str(out),
        "--format",
        layout,
        "--order",
        order,
        "--blocksize",
        "16",
    ]
    assert main(args) == 0
    raw = torch.load(out, weights_only=True)
    assert raw["weights"]["W_hh"]["layout"] == layout
    assert raw["weights"]["W_hh"]["col_indices"].dtype == torch.int16
    sparse = load_sparse(out)
    run = load_finished(trained_run, task="navigation").run
    assert sparse.info["order"] == order and sparse.info["seed"] == 0
    assert (sparse.permutation is None) == (order == "none")
    velocity, code = _inputs(4)
    with torch.no_grad():
        expected = run.model(velocity, code)
    _close(sparse.sequence(velocity, code), expected)


def test_export_cli_errors(trained_run, tmp_path, capsys):
    out = tmp_path / "model.pt"
    cases = [
        (["--run", str(tmp_path / "missing")], "metrics.json"),
        (["--run", str(trained_run), "--format", "bsr", "--blocksize", "5"], "--blocksize that divides Ng = 64, not 5"),
    ]
    for extra, message in cases:
        assert main(["export", "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("geosparse: error:") and message in err, err
        assert not out.exists()
    for extra in (["--format", "coo"], ["--blocksize", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(["export", "--run", str(trained_run), "--out", str(out), *extra])
        assert exc.value.code == 2
    bogus = tmp_path / "bogus.pt"
    torch.save({"format": "something else"}, bogus)
    with pytest.raises(ValueError, match="not a geosparse"):
        load_sparse(bogus)


def test_export_refuses_geometry_without_positions(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(run, "regularizer.space=none")) == 0
    capsys.readouterr()
    out = tmp_path / "model.pt"
    assert main(["export", "--run", str(run), "--out", str(out), "--order", "geometry"]) == 2
    assert "no moduli positions" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("layout", ["csr", "bsr"])
def test_fifty_step_sequence_at_n512(layout):
    """The paper's sequence length at a larger size: still within rtol 1e-5."""
    n, np_ = 512, 32
    torch.manual_seed(0)
    model = NavigationRNN(np_, n)
    mask, positions = synthetic_mask(n, 0.1, "torus")
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(torch.randn(n, n) * mask / (0.1 * n) ** 0.5)
    g = torch.Generator().manual_seed(4)
    velocity, code = 0.05 * torch.randn(50, 3, 2, generator=g), torch.rand(3, np_, generator=g)
    with torch.no_grad():
        expected = model(velocity, code)
    sparse = SparseNavigationRNN.from_dense(_weights(model), {"W_hh": mask}, layout, "geometry", positions, "torus")
    _close(sparse.sequence(velocity, code), expected)
    _close(sparse.sequence(velocity[:, :1], code[:1]), expected[:, :1])


def test_export_uses_learned_positions(tmp_path):
    run = tmp_path / "run"
    assert main(cli_args(run, "regularizer.learn_embedding=true")) == 0
    out = tmp_path / "model.pt"
    assert main(["export", "--run", str(run), "--out", str(out), "--order", "geometry"]) == 0
    loaded = load_finished(run, task="navigation").run
    fresh = new_run(loaded.config, loaded.seed, torch.device("cpu"))
    assert not torch.equal(fresh.regularizer.positions, loaded.regularizer.positions)  # restored, learned
    expected = geometry_order(loaded.regularizer.positions, loaded.regularizer.space)
    assert torch.equal(load_sparse(out).permutation, expected)
    velocity, code = _inputs(2)
    with torch.no_grad():
        _close(load_sparse(out).sequence(velocity, code), loaded.model(velocity, code))


# --------------------------------------------------------------------------- benchmark-inference
def test_benchmark_inference_times_every_format_of_a_run(trained_run, tmp_path, capsys):
    out = tmp_path / "inference.json"
    args = [
        "benchmark-inference",
        "--run",
        str(trained_run),
        "--out",
        str(out),
        "--batch",
        "1",
        "3",
        "--steps",
        "7",
        "--blocksize",
        "16",
        "--min-run-time",
        "0.001",
    ]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["status"] == "completed" and result["threads"] == 1
    info = result["info"]
    assert info["n_hidden"] == 64 and info["space"] == "torus"
    assert info["W_hh_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert set(info["block_density"]) == {"16", "32", "64"}
    assert set(info["block_density"]["16"]) == {"none", "geometry"}
    cases = {(r["format"], r["kind"], r["batch"]) for r in result["rows"]}
    expected = {
        (f, k, b) for f in ("dense", "csr", "csr-geo", "bsr-geo") for k in ("step", "sequence") for b in (1, 3)
    } | {("nn.RNN", "sequence", b) for b in (1, 3)}
    assert cases == expected
    for row in result["rows"]:
        assert row["time_ms"] > 0 and row["calls"] >= 1
        assert row["max_rel_error"] <= 1e-5, row  # every format computes the trained model's logits
        assert row["steps"] == (7 if row["kind"] == "sequence" else 1)
        if row["format"] == "dense":
            assert row["speedup_vs_dense"] == 1.0 and row["W_hh_bytes_memory"] == 64 * 64 * 4
        if row["format"] == "csr":  # 410 kept weights: 4 B value + 4 B column index + row pointers
            assert row["W_hh_bytes_memory"] == 410 * 8 + 65 * 4
            assert row["model_bytes_stored"] < row["model_bytes_memory"]


def test_benchmark_inference_of_runs_without_model_or_positions(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(run, "regularizer.space=none")) == 0
    out = tmp_path / "inference.json"
    assert (
        main(
            [
                "benchmark-inference",
                "--run",
                str(run),
                "--out",
                str(out),
                "--batch",
                "2",
                "--steps",
                "3",
                "--min-run-time",
                "0.001",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert {r["format"] for r in result["rows"]} == {"dense", "nn.RNN", "csr"}
    assert "no positions" in result["info"]["skipped"]["bsr-geo"]
    assert result["info"]["block_density"]["32"] == {"none": 1.0}
    # a diverged run has no model: its status and no rows, exit 0 (the grid goes on)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "status": "diverged"}))
    assert main(["benchmark-inference", "--run", str(run), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"run": str(run), "status": "diverged", "info": None, "rows": []}
    capsys.readouterr()
    assert main(["benchmark-inference", "--run", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "metrics.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["benchmark-inference", "--run", str(run), "--out", str(out), "--batch", "0"])
    assert exc.value.code == 2


def test_learned_positions_survive_the_workflow_deleting_the_checkpoint(tmp_path):
    """The train rule deletes checkpoint.pt when a run ends; the finished run (export,
    sweep, timings, connectivity) must still get the learned positions, from the final
    model file, not the initial ones rebuilt from the config."""
    run = tmp_path / "run"
    assert main(cli_args(run, "regularizer.learn_embedding=true")) == 0
    trained = torch.load(run / "checkpoint.pt", weights_only=True)["task_state"]["regularizer"]
    (run / "checkpoint.pt").unlink()  # as rule train does
    loaded = load_finished(run, task="navigation").run
    for key, value in trained.items():
        assert torch.equal(loaded.regularizer.state_dict()[key], value), key
    fresh = new_run(loaded.config, loaded.seed, torch.device("cpu"))
    assert not torch.equal(fresh.regularizer.positions, loaded.regularizer.positions)
    out = tmp_path / "model.pt"
    assert main(["export", "--run", str(run), "--out", str(out), "--order", "geometry"]) == 0
    assert torch.equal(
        load_sparse(out).permutation, geometry_order(loaded.regularizer.positions, loaded.regularizer.space)
    )


def test_final_model_file_is_self_describing(tmp_path):
    from geosparse.runs import FINAL_MODEL_VERSION, load_finished

    run = tmp_path / "run"
    assert main(cli_args(run)) == 0
    saved = torch.load(run / "model_sparse.pt", weights_only=True)
    assert saved["version"] == FINAL_MODEL_VERSION and saved["task"] == "navigation"
    assert saved["seed"] == 0 and saved["phase"] == "sparse" and saved["config"]["task"] == "navigation"
    assert set(saved) >= {"model", "masks", "task_state"}
    torch.save({**saved, "version": 99}, run / "model_sparse.pt")
    with pytest.raises(ValueError, match="format version 99"):
        load_finished(run)
    # a file of the earlier format ({model, masks}) still loads: positions follow from config + seed
    torch.save({"model": saved["model"], "masks": saved["masks"]}, run / "model_sparse.pt")
    legacy = load_finished(run)
    assert torch.equal(legacy.run.model.rnn.weight_hh_l0, saved["model"]["rnn.weight_hh_l0"])


def test_earlier_format_with_learned_positions_is_refused(tmp_path):
    from geosparse.runs import load_finished

    run = tmp_path / "run"
    assert main(cli_args(run, "regularizer.learn_embedding=true")) == 0
    saved = torch.load(run / "model_sparse.pt", weights_only=True)
    torch.save({"model": saved["model"], "masks": saved["masks"]}, run / "model_sparse.pt")
    with pytest.raises(ValueError, match="lacks the learned neuron positions"):
        load_finished(run)
