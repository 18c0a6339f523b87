"""Tables and verdicts from whatever finished navigation runs exist: a partial grid.

The workflow builds its tables only when every run of its grid is there. This command
builds the same navigation error table (``table_navigation_error.build``) and applies the
same verdict rules (``summary.build``) to any set of run ``metrics.json`` files, each
named by the grid entry it stands for; every (regularizer, target) of the grid without a
run is a row marked "not run". Usage (from the repository root)::

    python workflow/scripts/report_runs.py --config config/paper.yaml --out DIR \\
        torus_dog=runs/a/metrics.json klein_dog=runs/b/metrics.json none=runs/c/metrics.json ...

A run is accepted for a name when its regularizer config has every value of that name's
``regularizers.<name>.set`` (inhibitor and inversion aside when the space is ``none``:
R = 0 either way), a target of the grid, and no other run has its name, target and seed. Writes
``DIR/navigation_error.{csv,md,tex}``, ``DIR/summary.md`` and the comparison figure of the
runs that exist, ``DIR/navigation_comparison.{png,pdf}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aggregate_runs
import fig_comparison
import summary
import table_navigation_error
import table_navigation_lottery
import tables_io

from geosparse.config import deep_merge
from geosparse.files import read_json
from geosparse.grid import run_id

IRRELEVANT_WITHOUT_PENALTY = ("inhibitor", "invert")
"""With space ``none`` (R = 0) these keys change nothing, so they are not compared."""


def pipeline_config(grid_file: Path) -> dict:
    """``config/config.yaml`` with ``grid_file`` merged over it, as Snakemake merges them."""
    base = yaml.safe_load(Path("config/config.yaml").read_text())
    return deep_merge(base, yaml.safe_load(grid_file.read_text())) if grid_file else base


def record_for(name: str, metrics: dict, path: str, config: dict) -> dict:
    """The grid record (run_id, regularizer, label, size, target, seed) of one run file."""
    if name not in config["regularizers"]:
        raise ValueError(
            f"{path}: {name!r} is not a named regularizer; allowed values: {sorted(config['regularizers'])}"
        )
    expected = {k.split(".", 1)[1]: v for k, v in config["regularizers"][name]["set"].items()}
    actual = metrics["config"]["regularizer"]
    if expected.get("space") == "none":
        expected = {k: v for k, v in expected.items() if k not in IRRELEVANT_WITHOUT_PENALTY}
    wrong = [k for k in expected if actual.get(k) != expected[k]]
    if wrong:
        raise ValueError(
            f"{path}: run config does not match {name!r} in {wrong} "
            f"(run: {[actual.get(k) for k in wrong]}, {name}: {[expected[k] for k in wrong]})"
        )
    target, seed = metrics["config"]["pruning"]["target"], metrics["seed"]
    if target not in config["tasks"]["navigation"]["targets"]:
        raise ValueError(
            f"{path}: target {target} is not in the grid's targets {config['tasks']['navigation']['targets']}"
        )
    size = metrics["config"]["model"]["n_hidden"]
    return {
        "run_id": run_id(name, size, target, seed),
        "regularizer": name,
        "label": config["regularizers"][name]["label"],
        "size": size,
        "target": target,
        "seed": seed,
    }


def build(named_files: list[tuple[str, str]], config: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """(tidy runs, tidy error table, display table, summary Markdown) of the given runs."""
    records, paths = [], []
    for name, path in named_files:
        record = record_for(name, read_json(path), path, config)
        if any(r["run_id"] == record["run_id"] for r in records):
            raise ValueError(f"{path}: a second run {record['run_id']} (same name, size, target and seed)")
        records.append(record)
        paths.append(path)
    runs = aggregate_runs.aggregate(paths, records, "navigation")
    grid = config["tasks"]["navigation"]
    labels = {name: spec["label"] for name, spec in config["regularizers"].items()}
    everything = aggregate_runs.with_missing_cells(runs, grid["regularizers"], grid["targets"], labels, "navigation")
    paper = config["paper_results"]["navigation"]
    tidy, display = table_navigation_error.build(everything, paper)
    lottery, _ = table_navigation_lottery.build(runs, paper)
    text, _ = summary.build(tidy[tidy["n_runs"] > 0], lottery, runs, config["claims"]["navigation"])
    return runs, tidy, display, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", type=Path, help="grid config merged over config/config.yaml (e.g. config/paper.yaml)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the table and summary")
    parser.add_argument("runs", nargs="+", metavar="NAME=METRICS_JSON")
    args = parser.parse_args(argv)
    named = [tuple(item.split("=", 1)) for item in args.runs]
    if any(len(pair) != 2 for pair in named):
        parser.error("runs are NAME=path/to/metrics.json")
    config = pipeline_config(args.config)
    try:
        runs, tidy, display, text = build(named, config)
    except ValueError as error:
        print(f"report_runs: error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {ext: str(args.out / f"navigation_error.{ext}") for ext in ("csv", "md", "tex")}
    tables_io.write_table(tidy, display, paths, table_navigation_error.CAPTION)
    (args.out / "summary.md").write_text(text)
    fig_comparison.plot(runs, tidy[tidy["n_runs"] > 0], str(args.out / "navigation_comparison.png"))
    print(f"{len(named)} runs -> {args.out}/navigation_error.md, summary.md, navigation_comparison.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
