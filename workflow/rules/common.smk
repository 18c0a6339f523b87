"""Config validation and the grid's input functions, shared by every task's rules.

Rules read a task's grid only through these functions (``grid``, ``run_ids``,
``run_overrides``, ...); the job environment is environment.smk's, the final targets
outputs.smk's (from each task's ``geosparse.tasks.TASKS`` entry), the HTML report
report.smk's. Rule ``train`` and the aggregations serve every task, so a new task needs
rules only for tables and figures of its own (docs/extending.md).
"""

import functools
import itertools
import re
import shlex
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from geosparse.config import ConfigError, extends_chain, load_yaml, resolve_loaded, schema_errors
from geosparse.grid import RUN_ID, has_positions, run_assignments, run_id
from geosparse.sources import code_version
from geosparse.tasks import TASKS

SCHEMA = Path(workflow.current_basedir) / "../schemas/config.schema.yaml"


def _validate_config():
    """Every error of the config against the schema (``geosparse.config.schema_errors``:
    one line per error naming the key and the allowed values; NaN/inf refused), then
    ``snakemake.utils.validate`` for the schema's defaults."""
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = schema_errors(config, schema)
    if errors:
        raise WorkflowError("invalid pipeline config (workflow/schemas/config.schema.yaml):\n  "
                            + "\n  ".join(errors))
    validate(config, str(SCHEMA))


_validate_config()

RESULTS = f"results/{config['name']}"
"""Every output of this grid lives below this folder (``name`` from the config)."""

RUNS = f"{RESULTS}/runs"
"""Every trained run of the grid: ``<RUNS>/<task>/<run-id>/`` (one DVC output, cached)."""

TARGET_PATTERN = r"0(\.[0-9]+)?"
"""What a target must format to in a run id (``str``: 1e-05 would not match)."""

wildcard_constraints:
    task="[a-z]+",
    regularizer="[a-z][a-z0-9_]*",
    size="[0-9]+",
    upto="[0-9]+",
    target=TARGET_PATTERN,
    seed="[0-9]+",


def grid(task):
    """The ``tasks.<task>`` section of the config."""
    return config["tasks"][task]


def gpus(task):
    """GPUs one training job of ``task`` asks for (resource ``gpu``; sbatch --gpus on
    SLURM): 1 unless the grid pins its runs to the CPU (``device: cpu``). ``auto`` and
    ``cuda`` train on a GPU when the job has one, so they get one. The task's ``device``
    is the one source of truth; sweeps, timings and tables never ask for a GPU."""
    return 0 if grid(task)["device"] == "cpu" else 1


def gpu_launcher(task):
    """The command prefix of ``task``'s training jobs: for a GPU job, ``geosparse.gpu_slots``,
    which gives the job the least busy of the machine's GPUs (CUDA_VISIBLE_DEVICES), so
    concurrent jobs on a workstation with N GPUs spread over them; nothing for a CPU job."""
    return "python -m geosparse.gpu_slots " if gpus(task) else ""


@functools.cache
def training_code(task):
    """``geosparse.sources.code_version(task)``: a digest of the package files that
    ``task``'s training runs. A parameter of rule train, so a change to them retrains
    the task's runs (and a change elsewhere in the package does not)."""
    return code_version(task)


FOLLOW_UP_GROUP = "followup"
"""Snakemake group of the short per-run CPU jobs (sweep, sparse inference, structure):
on a cluster, ``--group-components followup=K`` (profiles/slurm) submits K of them as one
job; run locally, groups do nothing."""


def enabled_tasks():
    """Tasks of the config whose grid is not switched off (``enabled: false``)."""
    return [task for task, g in config["tasks"].items() if g.get("enabled", True)]


PAPER_TABLES = [task for task, spec in TASKS.items() if spec.paper_results]
"""Tasks with reported numbers in the paper (``paper_results.<task>`` is required)."""

WIKITEXT2_SPLITS = ("train", "valid", "test")


def wikitext2_files(task):
    """The WikiText-2 files a grid reads, if its base config uses the real corpus
    (``data.corpus: wikitext2``, language); none for the fixture corpus or other tasks."""
    data = base_run_config(task).get("data", {})
    if data.get("corpus") != "wikitext2":
        return []
    return [str(Path(data["dir"]) / f"wiki.{split}.tokens") for split in WIKITEXT2_SPLITS]


def sizes(task):
    """The model sizes (Ng, ``model.n_hidden``) of ``task``'s grid: its ``sizes`` list, or
    the base config's size alone when the grid has none."""
    return grid(task).get("sizes") or [base_run_config(task)["model"]["n_hidden"]]


def grid_blocks(task):
    """The blocks whose union is ``task``'s grid: the grid itself (regularizers x targets
    x seeds), then each of its ``also`` blocks (extra cells, e.g. a 98 % target for a
    few regularizers only)."""
    g = grid(task)
    return [g, *g.get("also", [])]


def run_records(task):
    """Every run of ``task``'s grid (the union of its blocks' regularizer x target x seed,
    in order, each once, at every size of ``sizes``) with its run id and label."""
    cells = dict.fromkeys(
        (r, n, t, s) for b in grid_blocks(task)
        for r, n, t, s in itertools.product(b["regularizers"], sizes(task), b["targets"], b["seeds"])
    )
    return [
        {"run_id": run_id(r, n, t, s), "regularizer": r,
         "label": config["regularizers"][r]["label"], "size": n, "target": t, "seed": s}
        for r, n, t, s in cells
    ]


def grid_cells(task):
    """The distinct (regularizer, target) cells of ``task``'s grid, in ``run_records`` order."""
    return list(dict.fromkeys((r["regularizer"], r["target"]) for r in run_records(task)))


def lottery_for(task, regularizer, target, seed):
    """Whether run (``regularizer``, ``target``, ``seed``) retrains its masks from a random
    init: the ``lottery_ticket`` of the first block holding the run (true, false, or the
    names of the regularizers that do; an ``also`` block without it: false)."""
    for block in grid_blocks(task):
        if (regularizer in block["regularizers"] and float(target) in map(float, block["targets"])
                and int(seed) in block["seeds"]):
            flag = block.get("lottery_ticket", False)
            return regularizer in flag if isinstance(flag, list) else flag
    raise WorkflowError(f"({regularizer}, {target}, seed {seed}) is not a run of the {task} grid")


def run_ids(task):
    """The run ids of ``task``'s grid, in ``run_records`` order."""
    return [record["run_id"] for record in run_records(task)]


def run_files(task, name):
    """``results/<grid>/runs/<task>/<run-id>/<name>`` for every run of the grid, in ``run_records`` order."""
    return [f"{RUNS}/{task}/{run}/{name}" for run in run_ids(task)]


def base_run_config(task):
    """``task``'s base run config, resolved (``extends`` followed, defaults filled in)."""
    return _resolved(task, ())


def run_overrides(task, regularizer, size, target, seed):
    """``--set`` assignments of one run (``geosparse.grid.run_assignments``)."""
    return run_assignments(base_run_config(task), config["regularizers"][regularizer]["set"], int(size),
                           target, lottery_for(task, regularizer, target, seed))


def set_args(task, regularizer, size, target, seed):
    """``run_overrides`` as a shell-quoted ``--set k=v ...`` string."""
    return " ".join(f"--set {shlex.quote(a)}" for a in run_overrides(task, regularizer, size, target, seed))


@functools.cache
def config_chain(path):
    """``path`` and every file it ``extends`` (the inputs a run config depends on), as
    geosparse resolves them."""
    return tuple(str(p) for p in extends_chain(path))


def run_config(task, regularizer, size, target, seed):
    """The resolved run config of one run (what ``geosparse train`` will run)."""
    return _resolved(task, tuple(run_overrides(task, regularizer, size, target, seed)))


@functools.cache
def _resolved(task, overrides):
    """``task``'s base config resolved with ``overrides`` (runs that differ only in their
    seed share it: resolved once)."""
    return resolve_loaded(_base_config_file(task), task, list(overrides))


@functools.cache
def _base_config_file(task):
    """``task``'s base config file and the files it extends, read once (``load_yaml``)."""
    return load_yaml(grid(task)["base_config"])


def first_cell(task):
    """``[target, seed]``: the grid's first target and first seed, whose runs the
    per-regularizer panels (heatmaps, rate maps, persistence, connectivity) show."""
    g = grid(task)
    return [g["targets"][0], g["seeds"][0]]


def geometric_runs(task):
    """Records of the runs whose regularizer places neurons on a moduli space
    (``geosparse.grid.has_positions``), at the grid's first size, target and seed."""
    g = grid(task)
    first = (sizes(task)[0], g["targets"][0], g["seeds"][0])
    return [
        r for r in run_records(task)
        if (r["size"], r["target"], r["seed"]) == first
        and has_positions(run_config(task, r["regularizer"], r["size"], r["target"], r["seed"])["regularizer"])
    ]


def _check_targets(task):
    """Every target of ``task``'s grid names its files distinctly: its ``str`` matches
    ``TARGET_PATTERN`` (run ids) and its whole percent differs from every other target's
    (summary.py's ``navigation_<regularizer>_t<percent>`` metrics)."""
    percents = {}
    for target in sorted({t for block in grid_blocks(task) for t in block["targets"]}):
        if not re.fullmatch(TARGET_PATTERN, str(target)):
            raise WorkflowError(f"config key 'tasks.{task}.targets': {target} would name its run folders "
                                f"'t{target}'; use a decimal target of at least 0.0001")
        percent = round(100 * target)
        if percent in percents:
            raise WorkflowError(f"config key 'tasks.{task}.targets': {percents[percent]} and {target} both "
                                f"round to {percent} %, which names their results; targets must differ by "
                                "at least one whole percent")
        percents[percent] = target


def _check_grid():
    """Fail before any job: unknown regularizer names, or a run config the run schema rejects."""
    known = sorted(config["regularizers"])
    for claim_task, claims in config["claims"].items():
        for role in ("geometric", "controls", "permuted"):
            names = claims.get(role, [])
            names = names if isinstance(names, list) else [names]
            unknown = [r for r in names if r not in config["regularizers"]]
            if unknown:
                raise WorkflowError(f"config key 'claims.{claim_task}.{role}': unknown regularizer(s) "
                                    f"{unknown}; allowed values: {known}")
    for task, g in config["tasks"].items():
        named = {}
        for prefix, block in [("", g), *((f"also[{i}].", b) for i, b in enumerate(g.get("also", [])))]:
            named[f"{prefix}regularizers"] = block["regularizers"]
            if isinstance(block.get("lottery_ticket"), list):
                named[f"{prefix}lottery_ticket"] = block["lottery_ticket"]
        for key, names in named.items():
            unknown = [r for r in names if r not in config["regularizers"]]
            if unknown:
                raise WorkflowError(f"config key 'tasks.{task}.{key}': unknown regularizer(s) "
                                    f"{unknown}; allowed values: {known}")
        if "structure" in g:
            blocks = g["structure"]["heatmap_size"]
            for n_hidden in sizes(task):
                if n_hidden % blocks:
                    raise WorkflowError(f"config key 'tasks.{task}.structure.heatmap_size': {blocks} must "
                                        f"divide Ng = {n_hidden} (tasks.{task}.sizes or {g['base_config']})")
        _check_targets(task)
        if task in PAPER_TABLES and task not in config["paper_results"]:
            raise WorkflowError(f"config key 'paper_results.{task}' is missing")
        for r in run_records(task):
            try:
                run_config(task, r["regularizer"], r["size"], r["target"], r["seed"])
            except (ConfigError, ValueError) as error:
                raise WorkflowError(f"config key 'tasks.{task}' with regularizer {r['regularizer']!r} "
                                    f"at Ng = {r['size']}: {error}")


_check_grid()
