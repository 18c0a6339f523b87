"""Aggregate the runs' metrics.json files into one tidy CSV (one row per run and phase).

Columns: task, run_id, regularizer, label, size (the grid's Ng of the run), target, seed,
phase (``sparse``: the pruned model; ``lottery``: retrained from a random init with the
same masks), status (``completed``, ``diverged`` or ``not_run``), the task's result keys
(``result_keys`` of its ``geosparse.tasks.TASKS`` entry; navigation: error_cm, loss,
W_hh_sparsity, sparsity, W_hh_fraction_below_1e-3), for language also corpus
(``wikitext2`` or ``fixture``, from the run config) and data (the
corpus description of metrics.json), then n_hidden, epochs, steps_per_epoch (navigation
only), pruned (the pruned matrices and the scope, e.g. ``W_hh per_tensor``), wall_time_s,
started_at and finished_at (UTC; empty for runs from before
geosparse recorded them), device, cpu_model (metrics.json ``machine``).
"""

import pandas as pd
from tables_io import MISSING, read_run_files, snakemake_job

from geosparse.tasks import TASKS

PHASES = {"sparse": "final", "lottery": "lottery_ticket"}


def phase_status(metrics: dict, phase: str) -> str:
    """``completed`` (has a result), ``diverged`` (stopped in it) or ``not_run``."""
    if metrics[PHASES[phase]] is not None:
        return "completed"
    diverged = metrics.get("diverged") or {}
    return "diverged" if diverged.get("phase") == phase else "not_run"


def run_rows(metrics: dict, record: dict, task: str) -> list[dict]:
    """Rows of one run: its sparse phase and, if enabled, its lottery-ticket phase."""
    config = metrics["config"]
    phases = ["sparse"] + (["lottery"] if config["lottery_ticket"]["enabled"] else [])
    corpus = {"corpus": config["data"]["corpus"], "data": metrics.get("data")} if task == "language" else {}
    rows = []
    for phase in phases:
        result = metrics[PHASES[phase]] or {}
        rows.append(
            {
                "task": task,
                **record,
                "phase": phase,
                "status": phase_status(metrics, phase),
                **{key: result.get(key) for key in TASKS[task].result_keys},
                **corpus,
                "n_hidden": config["model"]["n_hidden"],
                "epochs": config["training"]["epochs"],
                "steps_per_epoch": config["training"].get("steps_per_epoch"),
                "pruned": f"{'+'.join(config['pruning']['tensors'])} {config['pruning']['scope']}",
                "wall_time_s": metrics["wall_time_s"],
                "started_at": metrics.get("started_at"),
                "finished_at": metrics.get("finished_at"),
                "device": metrics["device"],
                "cpu_model": (metrics.get("machine") or {}).get("cpu_model"),
            }
        )
    return rows


def with_missing_cells(
    runs: pd.DataFrame, regularizers: list[str], targets: list[float], labels: dict[str, str], task: str
) -> pd.DataFrame:
    """``runs`` plus one placeholder row (status ``MISSING``, no seed) for every
    (regularizer, target) of the grid that has no run, so the tables show it as not run."""
    have = set(zip(runs["regularizer"], runs["target"], strict=True)) if len(runs) else set()
    missing = [
        {
            "task": task,
            "run_id": f"{r}-t{t}",
            "regularizer": r,
            "label": labels[r],
            "target": t,
            "seed": None,
            "phase": "sparse",
            "status": MISSING,
        }
        for r in regularizers
        for t in targets
        if (r, t) not in have
    ]
    return pd.concat([runs, pd.DataFrame(missing)], ignore_index=True) if missing else runs


def aggregate(paths: list[str], records: list[dict], task: str) -> pd.DataFrame:
    """The tidy table of runs ``paths`` (metrics.json files, aligned with ``records``)."""
    rows = []
    for metrics, record in read_run_files(paths, records, "metrics"):
        rows += run_rows(metrics, record, task)
    return pd.DataFrame(rows)


smk = snakemake_job(globals())
if smk is not None:
    aggregate(list(smk.input), smk.params.runs, smk.wildcards.task).to_csv(smk.output[0], index=False)
