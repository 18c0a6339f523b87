"""The Snakemake workflow: dry runs, lint, config validation, the smoke grid end to end."""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, subprocess_env


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["snakemake", "--nolock", *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def job_counts(output: str) -> dict[str, int]:
    """``rule -> count`` from Snakemake's "Job stats" table."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", output, re.M)}


def train_counts(output: str) -> dict[str, int]:
    """``task -> training jobs`` of rule ``train`` in a dry run (its outputs
    ``results/<grid>/runs/<task>/<run>/metrics.json``)."""
    tasks = [re.match(r"results/[^/]+/runs/(\w+)/[^/]+/metrics\.json$", path) for path in planned_outputs(output)]
    found: dict[str, int] = {}
    for match in filter(None, tasks):
        found[match[1]] = found.get(match[1], 0) + 1
    return found


def planned_outputs(output: str) -> list[str]:
    """Every output path of the jobs a (dry) run lists."""
    return [path for line in re.findall(r"^\s+output: (.+)$", output, re.M) for path in line.split(", ")]


def grid_name(config: str) -> str:
    return yaml.safe_load((REPO / config).read_text())["name"]


def grid_size(config: str, task: str = "navigation") -> int:
    """Runs of ``task``'s grid in ``config`` (the union of its blocks: regularizers x
    targets x seeds, then each ``also`` block); 0 when the task is absent or disabled."""
    grid = yaml.safe_load((REPO / config).read_text())["tasks"].get(task)
    if grid is None or not grid.get("enabled", True):
        return 0
    blocks = [grid, *grid.get("also", [])]
    return len({(r, t, s) for b in blocks for r in b["regularizers"] for t in b["targets"] for s in b["seeds"]})


@pytest.mark.parametrize("config", ["config/config.yaml", "config/paper.yaml", "config/smoke.yaml"])
def test_dry_run_lists_the_grid(config):
    result = snakemake("-n", "--forceall", "--configfile", config)  # whatever results/ holds
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    trains = train_counts(result.stdout + result.stderr)
    assert counts["train"] == sum(trains.values())  # one rule trains every task
    assert trains["navigation"] == counts["sweep_navigation"] == grid_size(config)
    assert counts["sparse_inference_navigation"] == grid_size(config)
    assert counts["table_navigation_error"] == counts["table_navigation_inference"] == counts["summary"] == 1
    for task, table in (("language", "table_language"), ("adding", "table_adding")):
        assert trains.get(task, 0) == grid_size(config, task)
        assert counts.get(table, 0) == (1 if grid_size(config, task) else 0)
    assert counts.get("fig_language_val_loss", 0) == (1 if grid_size(config, "language") else 0)
    # only the paper grid reads the real WikiText-2 (smoke: the FIXTURE corpus)
    assert counts.get("wikitext2", 0) == (1 if config == "config/paper.yaml" else 0)
    # every output of a grid lies under results/<its name>/, WikiText-2's data folder aside
    outputs = [p for p in planned_outputs(result.stdout + result.stderr) if not p.startswith("data/")]
    assert outputs and all(p.startswith(f"results/{grid_name(config)}/") for p in outputs)


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(name, resources) of every job a dry run lists; the name is the rule's, with
    ``_<task>`` added for rule ``train`` (from its wildcards)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        resources = re.search(r"^\s+resources: (.+)$", block, re.M)
        if rule:
            name = rule[1]
            if name == "train":
                name += "_" + re.search(r"^\s+wildcards: task=(\w+)", block, re.M)[1]
            pairs = (item.split("=", 1) for item in resources[1].split(", ")) if resources else ()
            jobs.append((name, dict(pairs)))
    return jobs


@pytest.mark.parametrize(
    ("config", "gpu_tasks"),
    [
        ("config/config.yaml", set()),
        ("config/smoke.yaml", set()),
        ("config/paper.yaml", {"navigation", "language"}),  # adding: a CPU job
    ],
)
@pytest.mark.parametrize("profile", ["profiles/slurm", "profiles/workstation"])
def test_a_job_asks_for_a_gpu_exactly_when_it_trains_on_one(config, gpu_tasks, profile):
    """Training jobs of a task with device auto/cuda ask for one GPU (gpu=1 -> sbatch
    --gpus=1), device: cpu ones and every other job for none. (Threads reaching
    --cpus-per-task is checked on a real cluster: .ci/slurm_test.sh.)"""
    result = snakemake("-n", "--forceall", "--profile", profile, "--configfile", config)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    grids = {
        **yaml.safe_load((REPO / "config/config.yaml").read_text())["tasks"],
        **yaml.safe_load((REPO / config).read_text())["tasks"],
    }
    assert {t for t, g in grids.items() if g.get("enabled", True) and g["device"] != "cpu"} == gpu_tasks
    trains = [(rule, res) for rule, res in jobs if rule.startswith("train_")]
    assert len(trains) == sum(grid_size(config, t) for t in ("navigation", "language", "adding"))
    for rule, resources in jobs:
        wants = rule.startswith("train_") and rule.removeprefix("train_") in gpu_tasks
        assert resources.get("gpu", "0") == ("1" if wants else "0"), (rule, resources)


def test_paper_grid_on_slurm_sizes_and_groups_its_jobs():
    """The paper grid through profiles/slurm: GPU training jobs with the measured time
    limit (navigation <= 60 min), the adding problem on a CPU, GPU jobs started through
    geosparse.gpu_slots, and the 390 per-run follow-ups (sweep, sparse inference,
    structure) submitted as group jobs of the profile's size, not one job each."""
    result = snakemake("-n", "--forceall", "-p", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    trains = [res for rule, res in planned_jobs(output) if rule.startswith("train_")]
    by_task = {}
    for rule, resources in planned_jobs(output):
        if rule.startswith("train_"):
            by_task.setdefault(rule.removeprefix("train_"), set()).add((resources["gpu"], int(resources["runtime"])))
    assert by_task["navigation"] == {("1", 60)} and by_task["adding"] == {("0", 30)}
    assert {gpu for gpu, _ in by_task["language"]} == {"1"}
    assert len(trains) == 200
    commands = re.findall(r"python -m geosparse train (\w+)", output)
    launched = re.findall(r"python -m geosparse\.gpu_slots python -m geosparse train (\w+)", output)
    assert sorted(set(launched)) == ["language", "navigation"] and len(commands) == 200
    per_group = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())["group-components"]
    size = int(dict(entry.split("=") for entry in per_group)["followup"])
    follow_ups = 3 * grid_size("config/paper.yaml")
    assert output.count("Group job followup ") == -(-follow_ups // size) < follow_ups / 10


def test_the_training_code_version_covers_what_training_runs():
    """``code_version(task)`` hashes the driver, the task's own modules and what they
    import, plus the schemas; not other tasks, the sweep, the CLI or the workflow's helpers."""
    from geosparse.sources import PACKAGE, training_sources

    files = {task: {str(p.relative_to(PACKAGE)) for p in training_sources(task)} for task in ("navigation", "adding")}
    shared = {"training.py", "runs.py", "pruning.py", "regularizer.py", "moduli.py", "runio.py", "precision.py"}
    assert (
        shared | {"tasks/navigation.py", "tasks/navigation_training.py", "schemas/navigation.schema.yaml"}
        <= files["navigation"]
    )
    assert shared | {"tasks/adding.py", "tasks/adding_training.py"} <= files["adding"]
    outside = {"sweep.py", "cli.py", "gpu_slots.py", "sources.py", "tasks/language_training.py", "sparse/model.py"}
    assert not outside & files["navigation"]
    assert "tasks/navigation.py" not in files["adding"]


def test_a_change_to_the_training_code_retrains(tmp_path):
    """Training jobs carry the version of the code they run (geosparse.sources): after
    an edit to src/geosparse/training.py the plan trains the run again, after an edit to
    code training does not run (the sweep) it does not."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("Snakefile", "workflow", "config", "src"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, work / name)
    target = "results/smoke/runs/adding/none-n16-t0.9-s0/metrics.json"
    done = snakemake(target, "--cores", "1", "--configfile", "config/smoke.yaml", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]

    def plan() -> str:
        result = snakemake(target, "-n", "--configfile", "config/smoke.yaml", cwd=work)
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr

    assert "Nothing to be done" in plan()
    with (work / "src/geosparse/sweep.py").open("a") as fh:
        fh.write("# not training code\n")
    assert "Nothing to be done" in plan()
    with (work / "src/geosparse/training.py").open("a") as fh:
        fh.write("# an edit\n")
    again = plan()
    assert job_counts(again).get("train") == 1
    assert "params" in again.lower()


def test_workflow_profile_holds_nothing_machine_specific():
    """Snakemake applies profiles/default to every run here, cluster runs included."""
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert not set(profile) & {
        "cores",
        "jobs",
        "resources",
        "executor",
        "default-resources",
        "set-resources",
        "set-threads",
    }
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert "slurm-status-command" not in slurm  # the plugin's default (sacct where it works)
    assert "set-resources" not in slurm  # GPUs come from the tasks' device setting


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e+400"])
def test_pipeline_config_refuses_nonfinite_numbers(tmp_path, value):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"tasks:\n  navigation:\n    sparse_inference:\n      min_run_time: {value}\n")
    result = snakemake("-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "'tasks.navigation.sparse_inference.min_run_time': must be a finite number" in (
        result.stdout + result.stderr
    )


def test_grid_names_are_distinct():
    configs = ("config/config.yaml", "config/smoke.yaml", "config/paper.yaml", *SIZE_STUDIES)
    names = [grid_name(c) for c in configs]
    assert names == ["default", "smoke", "paper", "scaling", "scaling-paper"]


SIZE_STUDIES = ("config/scaling.yaml", "config/scaling_paper.yaml")
"""Grids over the model size Ng (``tasks.navigation.sizes``)."""


def size_study_runs(config: str, upto: int | None = None) -> list[str]:
    """The metrics.json of every run of the size study ``config`` (of Ng <= ``upto``)."""
    grid = yaml.safe_load((REPO / config).read_text())["tasks"]["navigation"]
    return sorted(
        f"results/{grid_name(config)}/runs/navigation/{r}-n{n}-t{t}-s{s}/metrics.json"
        for r in grid["regularizers"]
        for n in grid["sizes"]
        for t in grid["targets"]
        for s in grid["seeds"]
        if upto is None or n <= upto
    )


@pytest.mark.parametrize(("config", "gpu"), [("config/scaling.yaml", "0"), ("config/scaling_paper.yaml", "1")])
def test_size_study_plans_every_size_and_only_the_scaling_outputs(config, gpu):
    """A grid over Ng trains regularizers x sizes x targets x seeds (run id
    <regularizer>-n<Ng>-t<target>-s<seed>, the size passed as model.n_hidden where it
    differs from the base config's) and builds the scaling table and figure of every
    size, none of the one-size tables."""
    result = snakemake("-n", "-p", "--forceall", "--configfile", config)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    runs = size_study_runs(config)
    assert len(runs) == (75 if config.endswith("paper.yaml") else 15)
    planned = planned_outputs(output)
    assert sorted(p for p in planned if p.endswith("metrics.json")) == runs
    counts = job_counts(output)
    assert counts["train"] == len(runs)
    assert counts["table_navigation_scaling"] == counts["fig_navigation_scaling"] == 1
    assert not {"sweep_navigation", "table_navigation_error", "summary"} & set(counts)
    stem = f"results/{grid_name(config)}"
    assert {f"{stem}/tables/navigation_scaling_upto4096.md", f"{stem}/figures/navigation_scaling_upto4096.png"} <= set(
        planned
    )
    assert all(p.startswith(f"{stem}/") for p in planned)
    base = 512 if config == "config/scaling.yaml" else 4096
    for n in (256, 512, 1024, 2048, 4096):
        command = re.search(rf"--out {stem}/runs/navigation/none-n{n}-t0.9-s0 .*", output)[0]
        assert ("--set model.n_hidden=" in command) == (n != base), command
        assert n == base or f"--set model.n_hidden={n} " in command
    assert {res["gpu"] for name, res in planned_jobs(output) if name == "train_navigation"} == {gpu}


def test_size_study_table_of_the_smaller_sizes_trains_only_them():
    """navigation_scaling_upto1024 needs the runs of Ng <= 1024 only (the others are its
    "not run" rows); a size outside the grid is refused with the allowed values."""
    targets = [
        f"results/scaling/{kind}/navigation_scaling_upto1024.{ext}"
        for kind, ext in (("tables", "md"), ("figures", "png"))
    ]
    result = snakemake("-n", "--forceall", *targets, "--configfile", "config/scaling.yaml")
    assert result.returncode == 0, result.stderr
    planned = planned_outputs(result.stdout + result.stderr)
    assert sorted(p for p in planned if p.endswith("metrics.json")) == size_study_runs("config/scaling.yaml", 1024)
    assert len(size_study_runs("config/scaling.yaml", 1024)) == 9
    bad = snakemake("-n", "results/scaling/tables/navigation_scaling_upto300.md", "--configfile", "config/scaling.yaml")
    assert bad.returncode != 0
    assert "300 is not a size of the grid; allowed values: [256, 512, 1024, 2048, 4096]" in bad.stdout + bad.stderr


def test_dvc_params_name_the_grid_of_their_config():
    """dvc.yaml's outputs are results/${grid}/...: params.yaml's grid must be the name
    of the pipeline config it runs, or DVC would track another grid's folder."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["grid"] == grid_name(params["pipeline_config"])
    assert "results/${grid}/" in (REPO / "dvc.yaml").read_text()


def test_dvc_tracks_every_enabled_task_and_plots_what_the_grid_draws():
    """dvc.yaml's outputs cover the runs of every task (one ``runs/`` folder) and every
    tidy CSV, table and figure; its image plots are the navigation figures the default
    grid builds, its data plots the sweep CSV and the per-epoch history (training curves),
    one line per regularizer (the templates colour by ``label``), both written by the
    grid; the selected grid file's keys are params (``dvc exp run -S``)."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = dvc["stages"]["pipeline"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert {"results/${grid}/runs", "results/${grid}/tidy", "results/${grid}/tables", "results/${grid}/figures"} <= set(
        outs
    )
    runs = next(o for o in stage["outs"] if isinstance(o, dict) and "results/${grid}/runs" in o)
    assert runs["results/${grid}/runs"].get("cache", True) and runs["results/${grid}/runs"]["persist"]
    params = [next(iter(p)) if isinstance(p, dict) else p for p in stage["params"]]
    assert "${pipeline_config}" in params and "config/config.yaml" in params
    result = snakemake("-n", "--forceall", "--configfile", "config/config.yaml")
    assert result.returncode == 0, result.stderr
    figures = {p for p in planned_outputs(result.stdout + result.stderr) if p.endswith(".png")}
    images = {p.replace("${grid}", "default") for p in dvc["plots"] if isinstance(p, str)}
    assert images == figures
    data_plots = dict(next(iter(p.items())) for p in dvc["plots"] if isinstance(p, dict))
    assert set(data_plots) == {
        "results/${grid}/tidy/navigation_sweep.csv",
        "results/${grid}/tidy/navigation_history.csv",
    }
    planned = planned_outputs(result.stdout + result.stderr)
    for path, spec in data_plots.items():
        assert path.replace("${grid}", "default") in planned  # the grid writes the plotted CSV
        template = json.loads((REPO / spec["template"]).read_text())
        assert template["encoding"]["color"]["field"] == "label"
        assert template["encoding"]["y"]["aggregate"] == "mean"
    curves = json.loads((REPO / data_plots["results/${grid}/tidy/navigation_history.csv"]["template"]).read_text())
    assert curves["transform"] == [{"filter": "datum.phase == 'sparse'"}]  # training curves of the pruning phase


def test_dvc_lock_is_the_shipped_default_pipeline():
    """dvc.lock (committed) records the pipeline of the shipped params.yaml: its command,
    its params and outputs under results/<grid>/, with a hash for every output."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stage = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["pipeline"]
    assert stage["cmd"] == f"snakemake --cores all --configfile {params['pipeline_config']}"
    assert stage["params"]["params.yaml"] == params
    expected = {f"results/{params['grid']}/{folder}" for folder in ("runs", "tables", "figures")}
    assert {o["path"] for o in stage["outs"]} >= expected
    assert all(o.get("md5") for o in stage["outs"])


def test_language_and_adding_grids():
    """Off by default; on (with real WikiText-2 for language) in smoke and paper."""
    assert grid_size("config/config.yaml", "language") == grid_size("config/config.yaml", "adding") == 0
    assert grid_size("config/smoke.yaml", "language") == grid_size("config/smoke.yaml", "adding") == 4
    assert grid_size("config/paper.yaml", "language") == 50
    assert grid_size("config/paper.yaml", "adding") == 20
    smoke = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["tasks"]["language"]
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())["tasks"]["language"]
    for base, corpus in ((smoke["base_config"], "fixture"), (paper["base_config"], "wikitext2")):
        chain = [REPO / base]
        while "extends" in (data := yaml.safe_load(chain[-1].read_text())):
            chain.append(chain[-1].parent / data["extends"])
        found = next(
            yaml.safe_load(p.read_text())["data"]["corpus"]
            for p in chain
            if "corpus" in (yaml.safe_load(p.read_text()).get("data") or {})
        )
        assert found == corpus, base


def test_enable_files_switch_the_default_tasks_on():
    result = snakemake("-n", "--forceall", "--configfile", "config/enable/language.yaml", "config/enable/adding.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    trains = train_counts(result.stdout + result.stderr)
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())["tasks"]
    for task in ("language", "adding"):
        g = default[task]
        assert trains[task] == len(g["regularizers"]) * len(g["targets"]) * len(g["seeds"])
    assert counts["wikitext2"] == 1 and trains["navigation"] == grid_size("config/config.yaml")


def test_default_and_paper_grids():
    # claims (1) and (3): 5 regularizers at 90 % x 2 seeds; claim (2): 3 at 98 %, one seed
    assert grid_size("config/config.yaml") == 5 * 1 * 2 + 3
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())["tasks"]["navigation"]
    assert len(paper["regularizers"]) == 13 and paper["targets"] == [0.9, 0.98]
    assert len(paper["seeds"]) == 5 and paper["lottery_ticket"] is True
    # GPU tasks fail at once on a node without CUDA (not `auto`, which trains on the CPU)
    devices = {
        task: g["device"] for task, g in yaml.safe_load((REPO / "config/paper.yaml").read_text())["tasks"].items()
    }
    assert devices == {"navigation": "cuda", "language": "cuda", "adding": "cpu"}


def test_grid_blocks_and_lottery_lists_plan_exactly_their_runs(tmp_path):
    """``also`` adds runs beyond the cross product (each run once); a ``lottery_ticket``
    list retrains only those regularizers' masks, in the runs of its block (a run's flag is
    that of the first block holding the run, not the cell)."""
    grid = {
        "tasks": {
            "navigation": {
                "regularizers": ["torus_dog", "none"],
                "targets": [0.9],
                "seeds": [0, 1],
                "lottery_ticket": ["torus_dog"],
                "also": [
                    {"regularizers": ["torus_dog", "permuted_dog"], "targets": [0.98, 0.9], "seeds": [0]},
                    {"regularizers": ["torus_dog"], "targets": [0.9], "seeds": [2]},  # a run's own block
                ],
            }
        }
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    result = snakemake("-n", "-p", "--forceall", "--configfile", "config/smoke.yaml", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    runs = re.findall(r"--out \S*/runs/navigation/(\S+?)'? .*lottery_ticket\.enabled=(true|false)", out)
    assert sorted(runs) == sorted(
        [
            ("torus_dog-n32-t0.9-s0", "true"),
            ("torus_dog-n32-t0.9-s1", "true"),
            ("none-n32-t0.9-s0", "false"),
            ("none-n32-t0.9-s1", "false"),
            ("torus_dog-n32-t0.98-s0", "false"),  # an also block without lottery_ticket
            ("permuted_dog-n32-t0.98-s0", "false"),
            ("permuted_dog-n32-t0.9-s0", "false"),
            ("torus_dog-n32-t0.9-s2", "false"),  # the cell's first block retrains, not the run's
        ]
    )
    grid["tasks"]["navigation"]["also"][0]["regularizers"] = ["torus_dog", "no_such"]
    path.write_text(yaml.safe_dump(grid))
    result = snakemake("-n", "--configfile", "config/smoke.yaml", str(path))
    assert result.returncode != 0
    assert "tasks.navigation.also[0].regularizers" in result.stdout + result.stderr


def test_paper_adding_grid_is_one_command_on_the_cpu():
    """paper.yaml + paper_adding_cpu.yaml: exactly the paper's 20 adding runs (4
    regularizers x 5 seeds at 95 %), every one on the CPU, no GPU asked, under
    results/paper-adding/, and nothing of the other tasks."""
    result = snakemake("-n", "-p", "--forceall", "--configfile", "config/paper.yaml", "config/paper_adding_cpu.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert train_counts(out) == {"adding": 20}
    commands = re.findall(r"python -m geosparse train adding .*", out)
    assert len(commands) == 20
    assert all("--config config/adding/paper.yaml" in c and "--device cpu" in c for c in commands)
    assert not re.search(r"gpu=[1-9]", out)
    outputs = planned_outputs(out)
    assert outputs and all(p.startswith("results/paper-adding/") for p in outputs)


def test_paper_grid_dry_run_is_fast():
    """Listing the paper grid (479 jobs) stays a matter of seconds: a guard against
    planning work that grows with the jobs (e.g. re-reading config files per job), not a
    timing (3.7-5.0 s of CPU time measured on a 2-core AMD EPYC, most of it Snakemake's
    own start-up; the limit leaves room for a slower or busier machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = snakemake("-n", "--forceall", "--quiet", "--configfile", "config/paper.yaml")
    assert result.returncode == 0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 15.0, cpu


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


BAD_CONFIGS = [  # through Snakemake: the whole path from --configfile to the message
    (
        {"tasks": {"navigation": {"regularizers": ["torus_dgo"]}}},
        ["tasks.navigation.regularizers", "torus_dgo", "allowed values", "klein_dog"],
    ),
    (
        {"tasks": {"navigation": {"targets": [0.9, 1.0], "seeds": [-1]}}},
        ["tasks.navigation.targets.1", "tasks.navigation.seeds.0", "minimum"],
    ),
    ({"bogus": 1}, ["<top level>", "bogus", "allowed keys"]),
    ({"tasks": {"navigation": {"sizes": [1, 512, 512]}}}, ["tasks.navigation.sizes", "minimum", "unique"]),
    ({"tasks": {"navigation": {"sizes": [256, 96]}}}, ["tasks.navigation.structure.heatmap_size", "Ng = 96"]),
    (
        {"regularizers": {"torus_dog": {"label": "x", "set": {"regularizer.space": "tours"}}}},
        ["regularizer 'torus_dog'", "regularizer.space", "tours"],
    ),
]


@pytest.mark.parametrize(("override", "expected"), BAD_CONFIGS)
def test_bad_config_fails_at_once_naming_the_key(tmp_path, override, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(override))
    result = snakemake("-n", "--configfile", str(path))
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "rule train:" not in message and "Job stats" not in message  # no job was scheduled
    for text in expected:
        assert text in message, message


def _merged(override: dict) -> dict:
    """config/config.yaml with ``override`` merged in, as Snakemake merges --configfile."""

    def merge(base: dict, new: dict) -> dict:
        return {
            **base,
            **{
                k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                for k, v in new.items()
            },
        }

    return merge(yaml.safe_load((REPO / "config/config.yaml").read_text()), override)


SCHEMA_ERRORS = [  # the schema alone (fast): key path and validator of each error
    ({"tasks": {"speech": {}}}, [(["tasks"], "additionalProperties")]),
    ({"tasks": {"language": {"sweep_levels": [0.5]}}}, [(["tasks", "language"], "additionalProperties")]),
    (
        {"tasks": {"adding": {"enabled": "yes", "seeds": []}}},
        [(["tasks", "adding", "enabled"], "type"), (["tasks", "adding", "seeds"], "minItems")],
    ),
    ({"tasks": {"navigation": {"regularizers": []}}}, [(["tasks", "navigation", "regularizers"], "minItems")]),
    ({"tasks": {"navigation": {"seeds": []}}}, [(["tasks", "navigation", "seeds"], "minItems")]),
    ({"tasks": {"navigation": {"targets": [-0.1]}}}, [(["tasks", "navigation", "targets", 0], "minimum")]),
    (
        {"tasks": {"navigation": {"lottery_ticket": "yes", "threads": 1.5, "device": "tpu"}}},
        [
            (["tasks", "navigation", "device"], "enum"),
            (["tasks", "navigation", "lottery_ticket"], "oneOf"),
            (["tasks", "navigation", "threads"], "type"),
        ],
    ),
    ({"regularizers": {"Bad-Name": {"label": "x", "set": {}}}}, [(["regularizers"], "pattern")]),
    (
        {"tasks": {"navigation": {"sparse_inference": {"batches": [0], "min_run_time": 0, "speed": 1}}}},
        [
            (["tasks", "navigation", "sparse_inference"], "additionalProperties"),
            (["tasks", "navigation", "sparse_inference", "batches", 0], "minimum"),
            (["tasks", "navigation", "sparse_inference", "min_run_time"], "exclusiveMinimum"),
        ],
    ),
]


@pytest.mark.parametrize(("override", "expected"), SCHEMA_ERRORS)
def test_schema_rejects(override, expected):
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    errors = jsonschema.Draft202012Validator(schema).iter_errors(_merged(override))
    found = sorted((list(e.absolute_path), e.validator) for e in errors)
    assert found == sorted(expected)


@pytest.mark.parametrize(
    "config",
    [
        "config/config.yaml",
        "config/paper.yaml",
        "config/smoke.yaml",
        "config/enable/language.yaml",
        "config/enable/adding.yaml",
        *SIZE_STUDIES,
    ],
)
def test_shipped_configs_are_valid(config):
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    merged = _merged(yaml.safe_load((REPO / config).read_text()))
    jsonschema.Draft202012Validator(schema).validate(merged)


def copy_workflow(parent: Path) -> Path:
    """``parent/repo``: what the workflow needs of this checkout (its files, configs,
    package and the WikiText-2 excerpt), to run a grid without touching ``results/``."""
    work = parent / "repo"
    work.mkdir()
    for name in ("Snakefile", "workflow", "config", "src", "data/wikitext-2-excerpt"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    return work


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The smoke workflow run end to end in a copy of the workflow, plus its report."""
    work = copy_workflow(tmp_path_factory.mktemp("workflow"))
    run = snakemake("--cores", "2", "--configfile", "config/smoke.yaml", cwd=work, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Report: results/smoke/report.html" in run.stderr  # the main job ends with it
    return work / "results" / "smoke"


@pytest.mark.slow
def test_smoke_tables_have_every_grid_row(smoke):
    grid = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["tasks"]["navigation"]
    labels = yaml.safe_load((REPO / "config/config.yaml").read_text())["regularizers"]
    for name in ("error", "lottery"):
        table = pd.read_csv(smoke / f"tables/navigation_{name}.csv")
        assert sorted(zip(table["regularizer"], table["target"], strict=True)) == sorted(
            (r, t) for r in grid["regularizers"] for t in grid["targets"]
        )
        assert (table["n_runs"] == len(grid["seeds"])).all()
        markdown = (smoke / f"tables/navigation_{name}.md").read_text()
        tex = (smoke / f"tables/navigation_{name}.tex").read_text()
        for regularizer in grid["regularizers"]:
            assert labels[regularizer]["label"] in markdown
        assert r"\begin{tabular}" in tex
    error = pd.read_csv(smoke / "tables/navigation_error.csv").set_index(["regularizer", "target"])
    assert error.loc[("torus_dog", 0.9), "paper_error_cm_mean"] == 6.29
    assert error["error_cm_mean"].notna().all()
    assert (error["sparsity_mean"] >= 0.85).all()
    lottery = pd.read_csv(smoke / "tables/navigation_lottery.csv")
    assert lottery["lottery_error_cm_mean"].notna().all()


@pytest.mark.slow
def test_smoke_figures_summary_metrics_and_report(smoke):
    for name in ("error_vs_sparsity", "comparison", "connectivity"):
        assert (smoke / f"figures/navigation_{name}.png").stat().st_size > 5000
    text = (smoke / "summary.md").read_text()
    assert all(f"({i})" in text for i in (1, 2, 3)) and "Ng = 32" in text
    assert "from the first run's start to the last run's finish" in text  # metrics.json times, end to end
    claims = json.loads((smoke / "metrics" / "claims.json").read_text())
    assert set(claims) == {
        "claim1_geometry_at_90",
        "claim2_all_fail_at_98",
        "claim3_lottery_tickets",
        "adding_stable_above_90",  # the smoke grid runs the adding problem too
    }
    grid = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["tasks"]["navigation"]
    rows = sorted(p.name for p in (smoke / "metrics").glob("navigation_*.json"))
    assert sorted(p.name for p in (smoke / "metrics").iterdir()) == ["claims.json", *rows]  # one row each
    assert rows == sorted(
        f"navigation_{r}_t{round(100 * t)}.json" for r in grid["regularizers"] for t in grid["targets"]
    )
    assert set(json.loads((smoke / "metrics" / rows[0]).read_text())) == {
        "error_cm_mean",
        "error_cm_std",
        "paper_error_cm_mean",
        "W_hh_sparsity",
        "n_diverged",
    }
    sweep = pd.read_csv(smoke / "tidy/navigation_sweep.csv")
    assert sorted(sweep["level"].unique()) == [0.5, 0.9, 0.98]
    conn = pd.read_csv(smoke / "tidy/navigation_connectivity.csv")
    assert set(conn["regularizer"]) == {"torus_dog", "permuted_dog"}
    report = (smoke / "report.html").read_text()
    assert "navigation_error.csv" in report and "navigation_connectivity.png" in report
    assert "navigation_inference.csv" in report and "Sparse inference (CPU, trained models)" in text


@pytest.mark.slow
def test_smoke_sparse_inference_of_every_run(smoke):
    grid = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["tasks"]["navigation"]
    tidy = pd.read_csv(smoke / "tidy/navigation_inference.csv")
    assert len(set(tidy["run_id"])) == len(grid["regularizers"]) * len(grid["targets"]) * len(grid["seeds"])
    assert set(tidy["batch"]) == set(grid["sparse_inference"]["batches"])
    assert (tidy["max_rel_error"] <= 1e-5).all() and (tidy["time_ms"] > 0).all()
    geometric = tidy[tidy["regularizer"] != "none"]
    assert set(geometric["format"]) == {"dense", "nn.RNN", "csr", "csr-geo", "bsr-geo"}
    assert set(tidy[tidy["regularizer"] == "none"]["format"]) == {"dense", "nn.RNN", "csr"}
    table = pd.read_csv(smoke / "tables/navigation_inference.csv")
    assert set(zip(table["regularizer"], table["target"], strict=True)) == {
        (r, t) for r in grid["regularizers"] for t in grid["targets"]
    }


@pytest.mark.slow
def test_portable_cpu_kernels_reach_every_training_job(smoke):
    """config/smoke.yaml has cpu_kernels: portable: every run recorded the pinned kernel
    environment and ran torch's AVX2 kernels (the CI machine has AVX-512)."""
    from geosparse.config import PORTABLE_CPU_KERNELS

    files = sorted(smoke.glob("runs/*/*/metrics.json"))
    assert len(files) == 20
    for path in files:
        machine = json.loads(path.read_text())["machine"]
        assert {k: machine["env"].get(k) for k in PORTABLE_CPU_KERNELS} == PORTABLE_CPU_KERNELS, path
        assert machine["torch_cpu_capability"] in ("AVX2", "DEFAULT"), path


@pytest.mark.slow
def test_smoke_rerun_is_a_no_op(smoke):
    result = snakemake("-n", "--configfile", "config/smoke.yaml", cwd=smoke.parents[1])
    assert "Nothing to be done" in result.stdout + result.stderr


def test_workflow_runs_record_the_snakemake_and_library_versions(smoke):
    """Every run of the smoke grid (all tasks) records the Snakemake that ran it, numpy
    and torch; structure.json records ripser too."""
    import snakemake as snakemake_package

    runs = sorted((smoke / "runs").glob("*/*/metrics.json"))
    assert {p.parts[-3] for p in runs} == {"navigation", "language", "adding"}
    for path in runs:
        versions = json.loads(path.read_text())["versions"]
        assert versions["snakemake"] == snakemake_package.__version__, path
        assert versions["numpy"] != "none" and versions["torch"].startswith(torch.__version__.split("+")[0])
    structure = json.loads(next((smoke / "runs" / "navigation").glob("*/structure.json")).read_text())
    assert structure["versions"]["ripser"] != "none"


@pytest.mark.slow
def test_a_deleted_run_file_is_rebuilt_and_the_tables_follow(smoke, tmp_path):
    """Delete one run's metrics.json: the plan retrains that run (only it) and redoes the
    aggregation, tables and summary that read it."""
    metrics = smoke / "runs" / "navigation" / "torus_dog-n32-t0.9-s0" / "metrics.json"
    saved = tmp_path / "metrics.json"
    shutil.copy2(metrics, saved)
    metrics.unlink()
    try:
        result = snakemake("-n", "--configfile", "config/smoke.yaml", cwd=smoke.parents[1])
    finally:
        shutil.copy2(saved, metrics)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train"] == train_counts(result.stdout + result.stderr)["navigation"] == 1
    assert counts["aggregate_runs"] >= 1 and counts["table_navigation_error"] == 1 and counts["summary"] == 1
    rerun = snakemake("-n", "--configfile", "config/smoke.yaml", cwd=smoke.parents[1])
    assert "Nothing to be done" in rerun.stdout + rerun.stderr  # restored: up to date again


@pytest.mark.slow
def test_another_grid_after_smoke_plans_nothing_in_its_folder(smoke):
    """The paper grid, planned in the clone where the smoke grid ran, neither reruns nor
    overwrites any smoke output (its jobs all write below results/paper/)."""
    before = {p: p.stat().st_mtime_ns for p in smoke.rglob("*") if p.is_file()}
    result = snakemake("-n", "--configfile", "config/paper.yaml", cwd=smoke.parents[1])
    assert result.returncode == 0, result.stderr
    outputs = [p for p in planned_outputs(result.stdout + result.stderr) if not p.startswith("data/")]
    assert outputs and all(p.startswith("results/paper/") for p in outputs)
    assert {p: p.stat().st_mtime_ns for p in smoke.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_smoke_language_and_adding_tables(smoke):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["tasks"]
    for task, name in (("language", "language_scores"), ("adding", "adding_mse")):
        grid = config[task]
        table = pd.read_csv(smoke / f"tables/{name}.csv")
        assert sorted(zip(table["regularizer"], table["target"], strict=True)) == sorted(
            (r, t) for r in grid["regularizers"] for t in grid["targets"]
        )
        assert (table["n_runs"] == len(grid["seeds"])).all()
        assert r"\begin{tabular}" in (smoke / f"tables/{name}.tex").read_text()
    language = pd.read_csv(smoke / "tables/language_scores.csv")
    assert (language["data"] == "FIXTURE").all()  # the smoke grid trains on the fixture
    assert language["test_ppl_mean"].notna().all()
    for ext in ("md", "tex"):
        text = (smoke / f"tables/language_scores.{ext}").read_text()
        assert "FIXTURE corpus, not WikiText-2 results" in text
    adding = pd.read_csv(smoke / "tables/adding_mse.csv")
    assert adding["test_mse_mean"].notna().all()
    assert (adding["baseline_mse"].round(3) == 0.167).all()
    assert (smoke / "figures/language_val_loss.png").stat().st_size > 5000
    history = pd.read_csv(smoke / "tidy/language_history.csv")
    assert history["val_loss"].notna().any()
    summary_text = (smoke / "summary.md").read_text()
    assert "## Language modelling (FIXTURE)" in summary_text
    assert "## Adding problem" in summary_text
    report = (smoke / "report.html").read_text()
    assert "language_scores.csv" in report and "language_val_loss.png" in report


@pytest.mark.slow
def test_a_grid_whose_runs_all_diverge_still_ends_with_its_report(tmp_path):
    """Every run of every task diverges (AdamW / SGD at lr 1e30 overflow in the first
    epoch): the grid still writes its tables, figures, verdicts and report, every run
    counted as diverged and no verdict claimed."""
    work = copy_workflow(tmp_path)
    grid = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    grid["name"] = "diverge"
    for task, g in grid["tasks"].items():
        (work / f"config/{task}/diverge.yaml").write_text(
            yaml.safe_dump({"extends": "smoke.yaml", "training": {"lr": 1.0e30}})
        )
        g["base_config"] = f"config/{task}/diverge.yaml"
        g["seeds"] = [0]
    (work / "config/diverge.yaml").write_text(yaml.safe_dump(grid))
    run = snakemake("--cores", "2", "--configfile", "config/diverge.yaml", cwd=work, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Report: results/diverge/report.html" in run.stderr
    results = work / "results" / "diverge"
    for task in grid["tasks"]:
        runs = pd.read_csv(results / f"tidy/{task}_runs.csv")
        sparse = runs[runs["phase"] == "sparse"]
        assert len(sparse) == grid_size("config/smoke.yaml", task) // 2  # one seed of two
        assert (sparse["status"] == "diverged").all(), sparse[["run_id", "status"]]
    error = pd.read_csv(results / "tables/navigation_error.csv")
    assert (error["n_diverged"] == error["n_runs"]).all() and error["error_cm_mean"].isna().all()
    structure = pd.read_csv(results / "tables/navigation_structure.csv")
    assert (structure["n_diverged"] == structure["n_runs"]).all()
    claims = json.loads((results / "metrics/claims.json").read_text())
    assert True not in claims.values(), claims  # nothing replicated by runs that all diverged
    summary = (results / "summary.md").read_text()
    assert all(f"({i})" in summary for i in (1, 2, 3))
    assert summary.count("(every run diverged)") == 3  # each claim says why it is not tested


def _documented_output_patterns() -> list[str]:
    """Glob patterns of the "Pipeline outputs" table of docs/pipeline.md (first column), relative to
    results/<name>/: ``<...>`` -> ``*``, ``{a,b}`` -> one pattern each."""
    text = (REPO / "docs/pipeline.md").read_text().split("### Pipeline outputs", 1)[1].split("\n## ", 1)[0]
    patterns = []
    for row in re.findall(r"^\| (`.+?`) \|", text, re.M):
        for path in re.findall(r"`([^`]+)`", row):
            path = re.sub(r"<[^>]+>", "*", path)
            braces = re.search(r"\{([^}]+)\}", path)
            options = braces[1].split(",") if braces else [""]
            patterns += [path.replace(braces[0], o) if braces else path for o in options]
    return patterns


@pytest.mark.slow
def test_documented_outputs_table_matches_the_smoke_results(smoke):
    """Every path of the outputs table (docs/pipeline.md) exists after the smoke grid (which runs
    every task), and every file the grid writes outside the run and log folders is listed."""
    patterns = _documented_output_patterns()
    assert len(patterns) > 15
    for pattern in patterns:
        assert list(smoke.glob(pattern.rstrip("/"))), f"docs/pipeline.md lists {pattern}, the smoke grid has none"
    for path in smoke.rglob("*"):
        rel = path.relative_to(smoke)
        if path.is_dir() or rel.parts[0] in ("logs", "runs", "metrics"):
            continue
        assert any(rel.match(p) for p in patterns), f"{rel} is not in the outputs table of docs/pipeline.md"
