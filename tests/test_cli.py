"""Command line: bad configs exit with code 2 and a message, before any work is done."""

from __future__ import annotations

import argparse

import pytest
import torch

from conftest import SMOKE, cli_args, read_metrics, run_cli_subprocess
from geosparse.cli import build_parser, main
from geosparse.config import ConfigError, load_schema, resolve
from geosparse.inhibitors import INHIBITORS
from geosparse.moduli import SPACES
from geosparse.regularizer import L1_STAR_SCALES


def test_schema_enums_are_the_registries():
    """The regularizer schema lists exactly the registered spaces, inhibitors and named
    scales (one source of truth: a new space is registered, then this test names the
    schema line to extend)."""
    properties = load_schema("regularizer")["properties"]
    assert properties["space"]["enum"] == list(SPACES)
    assert properties["inhibitor"]["enum"] == list(INHIBITORS)
    assert properties["scale"]["oneOf"][1]["enum"] == list(L1_STAR_SCALES)


def _fails_cleanly(capsys, tmp_path, args_overrides, *expected, config=SMOKE) -> str:
    out = tmp_path / "run"
    code = main(cli_args(out, *args_overrides, config=config))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("geosparse: error:"), err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    # nothing was started: no run directory, no metrics, no checkpoint, no log
    assert not out.exists()
    return err


@pytest.mark.parametrize(
    "override,expected",
    [
        ("regularizer.space=tors", ["regularizer.space", "tors", *SPACES]),
        ("regularizer.inhibitor=doggo", ["regularizer.inhibitor", "doggo", *INHIBITORS]),
        ("pruning.target=1.0", ["pruning.target", "1"]),
        ("pruning.target=-0.1", ["pruning.target", "-0.1", "0"]),
        ("regularizer.strength=-1", ["regularizer.strength", "-1", "minimum of 0"]),
        ("regularizer.p=0", ["regularizer.p", "0"]),
        ("model.n_hidden=1", ["model.n_hidden", "1", "minimum of 2"]),
        ("pruning.schedule=exp", ["pruning.schedule", "exp", "linear", "cubic"]),
        ("pruning.scope=layer", ["pruning.scope", "layer", "global", "per_tensor"]),
        ("pruning.tensors=[W_hh, bias]", ["pruning.tensors", "bias", "W_hh", "decoder"]),
        ("model.activation=gelu", ["model.activation", "gelu", "relu", "tanh"]),
        ("training.lr=0", ["training.lr"]),
        ("training.epochs=0", ["training.epochs"]),
        ("regularizer.scale=l2_star", ["regularizer.scale", "l1_star", "l1_star_authors"]),
    ],
)
def test_bad_values_exit_2_naming_key_and_allowed_values(capsys, tmp_path, override, expected):
    _fails_cleanly(capsys, tmp_path, [override], *expected)


def test_unknown_keys_are_named(capsys, tmp_path):
    _fails_cleanly(capsys, tmp_path, ["model.n_hiden=64"], "model", "n_hiden")
    _fails_cleanly(capsys, tmp_path, ["optimiser=adam"], "optimiser")
    _fails_cleanly(capsys, tmp_path, ["regularizer.spaces=torus"], "regularizer", "spaces")


def test_every_error_is_reported_at_once(capsys, tmp_path):
    err = _fails_cleanly(capsys, tmp_path, ["regularizer.space=tors", "regularizer.p=0"])
    assert "regularizer.space" in err and "regularizer.p" in err


def test_nonexistent_config_file(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    _fails_cleanly(capsys, tmp_path, [], "config file not found", str(missing), config=missing)


def test_malformed_set_and_non_mapping_config(capsys, tmp_path):
    _fails_cleanly(capsys, tmp_path, ["training.lr"], "key=value", "training.lr")
    _fails_cleanly(capsys, tmp_path, ["model=3", "model.n_hidden=4"], "model")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    _fails_cleanly(capsys, tmp_path, [], "mapping", config=listing)


def test_l1_star_scale_needs_the_standard_space(capsys, tmp_path):
    _fails_cleanly(capsys, tmp_path, ["regularizer.scale=l1_star"], "standard", "torus")


def test_config_for_another_task_is_refused(capsys, tmp_path):
    other = tmp_path / "lm.yaml"
    other.write_text(f"extends: {SMOKE}\ntask: language\n")
    _fails_cleanly(capsys, tmp_path, [], "task", "language", config=other)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(capsys, tmp_path):
    out = tmp_path / "run"
    args = cli_args(out)
    args[args.index("--device") + 1] = "cuda"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot use CUDA here" in err and torch.__version__ in err, err  # names the torch build
    assert not (out / "metrics.json").exists()


def test_negative_seed_is_an_argument_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(cli_args(tmp_path / "run", seed=-1))
    assert info.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_subprocess_exit_code_and_stderr(tmp_path):
    out = tmp_path / "run"
    result = run_cli_subprocess(cli_args(out, "regularizer.space=tors"))
    assert result.returncode == 2
    assert "regularizer.space" in result.stderr and "klein" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


# ------------------------------------------------------------------------ accepted values
def test_set_parses_yaml_values_including_scientific_notation():
    config = resolve(
        SMOKE,
        "navigation",
        [
            "training.lr=1e-3",
            "regularizer.strength=2.5E2",
            "training.grad_clip=null",
            "pruning.tensors=[W_hh]",
            "lottery_ticket.enabled=true",
            "model.n_hidden=8",
        ],
    )
    assert config["training"]["lr"] == 1e-3 and isinstance(config["training"]["lr"], float)
    assert config["regularizer"]["strength"] == 250.0
    assert config["training"]["grad_clip"] is None
    assert config["pruning"]["tensors"] == ["W_hh"]
    assert config["lottery_ticket"]["enabled"] is True
    assert config["model"]["n_hidden"] == 8
    with pytest.raises(ConfigError, match="n_hidden"):
        resolve(SMOKE, "navigation", ["model.n_hidden='8'"])


def test_smoke_extends_default_and_every_shipped_config_validates():
    smoke = resolve(SMOKE, "navigation")
    assert smoke["model"]["n_hidden"] == 32
    assert smoke["regularizer"]["space"] == "torus"  # inherited from default.yaml
    for name in ("default", "smoke", "paper"):
        config = resolve(SMOKE.parent / f"{name}.yaml", "navigation")
        assert config["task"] == "navigation"
    paper = resolve(SMOKE.parent / "paper.yaml", "navigation")
    assert paper["model"]["n_hidden"] == 4096 and paper["place_cells"]["n"] == 512
    assert paper["training"]["lr"] == pytest.approx(1e-4)


def test_a_valid_run_prints_a_summary_and_writes_outputs(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(cli_args(out, "training.epochs=2", "training.steps_per_epoch=2")) == 0
    printed = capsys.readouterr().out
    assert "status=completed" in printed and "metrics.json" in printed
    metrics = read_metrics(out)
    assert metrics["config"]["training"]["epochs"] == 2
    for name in ("metrics.json", "checkpoint.pt", "model_sparse.pt", "train.log"):
        assert (out / name).is_file()


def test_train_help_is_task_specific(capsys):
    """`geosparse train TASK --help` lists that task's config sections and keys."""
    for task, own, foreign in (
        ("navigation", "place_cells:", "bptt"),
        ("language", "bptt", "place_cells"),
        ("adding", "train_samples", "place_cells"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["train", task, "--help"])
        assert stop.value.code == 0
        text = capsys.readouterr().out
        assert own in text and foreign not in text
        assert f"config/{task}/" in text and "regularizer: inhibitor" in text


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand parser by its full command, e.g. "train navigation"."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def test_every_subcommand_help_has_a_description_and_shows_its_defaults():
    """Each command's --help says what it does and, for every option with a default,
    which default it takes; none points at a file outside the repository."""
    commands = _subcommands(build_parser())
    assert {"train navigation", "data", "sweep", "export", "benchmark-inference"} <= set(commands)
    for command, parser in commands.items():
        text = parser.format_help()
        assert parser.description and len(parser.description) > 40, command
        for action in parser._actions:
            if action.option_strings and action.default not in (None, [], argparse.SUPPRESS) and action.help:
                assert f"(default: {action.default})" in " ".join(text.split()), (command, action.dest)
        assert "PAPER.md" not in text and "../shared" not in text, command
    assert "(default: 32)" in commands["export"].format_help()
    assert "(default: auto)" in " ".join(commands["train adding"].format_help().split())


def test_the_train_commands_are_the_task_registry(monkeypatch):
    """``geosparse train`` has one subcommand per ``geosparse.tasks.TASKS`` entry; a
    registered task gets its own, with its headline result in the help."""
    from geosparse.tasks import TASKS, TaskSpec

    assert [c.split()[1] for c in _subcommands(build_parser()) if c.startswith("train ")] == list(TASKS)
    toy_schema = {"description": "One toy run, for the registry test only.", "properties": {"task": {}}}
    monkeypatch.setitem(TASKS, "toy", TaskSpec("toy_module:ToyTask", "toy_score", ("toy_score",)))
    monkeypatch.setattr("geosparse.config.load_schema", lambda name: toy_schema if name == "toy" else load_schema(name))
    help_text = _subcommands(build_parser())["train toy"].format_help()
    assert "prints status, toy_score and W_hh_sparsity" in help_text


def test_version_and_module_entry_point():
    result = run_cli_subprocess(["--version"])
    assert result.returncode == 0 and result.stdout.startswith("geosparse ")
    import subprocess
    import sys

    module = subprocess.run([sys.executable, "-m", "geosparse", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "geosparse train TASK" in module.stdout and "``" not in module.stdout


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only bad input (``InputError``, config errors included) becomes exit 2 with a
    one-line message; any other ValueError is a bug and propagates with its traceback."""
    from geosparse import training

    def broken(self):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(training.Trainer, "train", broken)
    with pytest.raises(ValueError, match="internal invariant"):
        main(cli_args(tmp_path / "run"))
