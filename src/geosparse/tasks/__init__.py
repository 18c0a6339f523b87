"""The task registry: every task of geosparse, and what the command line, the training
driver and the workflow derive from it. Torch-free (the workflow imports it to plan).

Adding a task is one module (``tasks/<task>_training.py`` with its ``Task`` class), one
entry here, and its run schema (``schemas/<task>.schema.yaml``); the workflow then
trains, aggregates and tabulates its runs with no new rule (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """What the rest of the code needs to know about one task."""

    task_class: str
    """Its ``Task`` class as ``module:Class``, imported on first use (``runs.new_run``)."""
    headline: str
    """The result key of ``metrics.json``'s ``final`` that ``geosparse train`` prints."""
    result_keys: tuple[str, ...]
    """Keys of ``final`` (and ``lottery_ticket``) kept in ``tidy/<task>_runs.csv``."""
    tables: tuple[str, ...] = ()
    """The workflow's tables ``tables/<task>_<name>.{csv,md,tex}`` (rules in tables.smk)."""
    figures: tuple[str, ...] = ()
    """The workflow's figures ``figures/<task>_<name>.{png,pdf}`` (rules in figures.smk)."""
    run_files: tuple[str, ...] = ("metrics.json",)
    """Files of every run folder that are final targets of the workflow."""
    summary: bool = False
    """Whether ``summary.md`` reports on it (rule summary)."""
    paper_results: bool = False
    """Whether the paper reports its numbers (then ``paper_results.<task>`` is required)."""


TASKS: dict[str, TaskSpec] = {
    "navigation": TaskSpec(
        task_class="geosparse.tasks.navigation_training:NavigationTask",
        headline="error_cm",
        result_keys=("error_cm", "loss", "W_hh_sparsity", "sparsity", "W_hh_fraction_below_1e-3"),
        tables=("error", "lottery", "inference", "structure"),
        figures=("error_vs_sparsity", "comparison", "connectivity", "heatmaps", "rate_maps", "persistence"),
        run_files=("metrics.json", "sweep.json", "inference.json", "structure.json"),
        summary=True,
        paper_results=True,
    ),
    "language": TaskSpec(
        task_class="geosparse.tasks.language_training:LanguageTask",
        headline="test_ppl",
        result_keys=(
            "test_loss",
            "test_ppl",
            "test_accuracy",
            "val_loss",
            "val_ppl",
            "val_loss_increases",
            "W_hh_sparsity",
            "sparsity",
        ),
        tables=("scores",),
        figures=("val_loss",),
    ),
    "adding": TaskSpec(
        task_class="geosparse.tasks.adding_training:AddingTask",
        headline="test_mse",
        result_keys=("test_mse", "baseline_mse", "baseline_mse_measured", "val_mse", "W_hh_sparsity", "sparsity"),
        tables=("mse",),
        figures=("val_mse",),
        summary=True,
    ),
}
"""Task name -> its spec; the order is the order of the command line's help."""
