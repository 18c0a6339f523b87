"""CI: DVC in a clone where `dvc repro` just reproduced the smoke grid (run from its root).

Checks what a DVC user takes for granted: `dvc status` is clean; `dvc plots show` writes
an HTML page, its sweep and training-curve plots have one series (colour) per regularizer
of the grid and
the navigation figures are image plots; the trained runs go to a remote with `dvc push`
and come back with `dvc pull`; `dvc exp run -S` on the grid's seeds changes the tables'
seeds and nothing else is left to do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

UP_TO_DATE = "Data and pipelines are up to date."


def dvc(*args: str) -> str:
    done = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"[dvc_check] FAIL: dvc {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"[dvc_check] FAIL: {message}")
    print(f"[dvc_check] ok: {message}")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    grid_file, grid = params["pipeline_config"], params["grid"]
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    navigation = yaml.safe_load(Path(grid_file).read_text())["tasks"]["navigation"]
    labels = {config["regularizers"][r]["label"] for r in navigation["regularizers"]}

    check(dvc("status") == UP_TO_DATE, f"dvc status after dvc repro: {UP_TO_DATE!r}")

    plots = json.loads(dvc("plots", "show", "--json"))
    check(not plots.get("errors"), f"dvc plots show loads every plot (errors: {plots.get('errors')})")
    for name, csv in (("sweep", "navigation_sweep.csv"), ("training curves", "navigation_history.csv")):
        (plot,) = plots["data"][f"results/{grid}/tidy/{csv}"]
        content = plot["content"]
        series = {row[content["encoding"]["color"]["field"]] for row in content["data"]["values"]}
        check(series == labels, f"{name} plot: one series per regularizer ({len(series)}: {sorted(series)})")
    images = [name for name, entries in plots["data"].items() if entries and entries[0]["type"] == "image"]
    check(len(images) == 6, f"six figures as image plots ({len(images)})")
    dvc("plots", "show", "-o", "dvc_plots")
    check(Path("dvc_plots/index.html").stat().st_size > 1000, "dvc plots show wrote dvc_plots/index.html")

    remote = tempfile.mkdtemp(prefix="geosparse-dvc-remote-")
    dvc("remote", "add", "--local", "-d", "ci", remote)  # .dvc/config.local: never committed
    dvc("push")
    models = sorted(Path(f"results/{grid}/runs").glob("*/*/model_sparse.pt"))
    shutil.rmtree(f"results/{grid}/runs")
    shutil.rmtree(".dvc/cache")
    dvc("pull")
    check(
        bool(models) and all(m.is_file() for m in models) and dvc("status") == UP_TO_DATE,
        f"dvc push, then without runs/ and the cache, dvc pull restores the {len(models)} models (status clean)",
    )

    seeds = navigation["seeds"][-1:]
    for key, value in (("user.email", "ci@localhost"), ("user.name", "geosparse CI")):  # exp commits need one
        if subprocess.run(["git", "config", key], capture_output=True, check=False).returncode != 0:
            subprocess.run(["git", "config", key, value], check=True)
    dvc("exp", "run", "--quiet", "-S", f"{grid_file}:tasks.navigation.seeds={json.dumps(seeds)}")
    runs = pd.read_csv(f"results/{grid}/tidy/navigation_runs.csv")
    check(sorted(set(runs["seed"])) == seeds, f"dvc exp run -S seeds={seeds}: the tidy runs have seeds {seeds}")
    table = pd.read_csv(f"results/{grid}/tables/navigation_error.csv")
    check((table["n_runs"] == 1).all(), "and the error table counts one run per cell")
    check(
        yaml.safe_load(Path(grid_file).read_text())["tasks"]["navigation"]["seeds"] == seeds,
        f"the experiment set {grid_file} (applied to the workspace)",
    )
    check(dvc("status") == UP_TO_DATE, "dvc status after the experiment: up to date")


if __name__ == "__main__":
    main()
