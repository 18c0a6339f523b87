"""The grid's final targets and the report entries of its tables and figures: each task's
outputs come from its ``geosparse.tasks.TASKS`` entry (``task_outputs``); a size study's
are the scaling table and figure (``scaling_outputs``).
"""

from snakemake.exceptions import WorkflowError


def table_outputs(name, caption):
    """CSV (in the report), Markdown and LaTeX outputs of table ``name``."""
    stem = f"{RESULTS}/tables/{name}"
    return {
        "csv": report(f"{stem}.csv", caption=caption, category="Tables",
                      labels={"task": name.split("_")[0], "table": name}),
        "md": f"{stem}.md",
        "tex": f"{stem}.tex",
    }


def figure(name, caption):
    """A figure's outputs: the PNG (first, marked for the Snakemake report) and the PDF
    beside it (``plotting.save`` writes both)."""
    return {
        "png": report(f"{RESULTS}/figures/{name}.png", caption=caption, category="Figures",
                      labels={"task": name.split("_")[0], "figure": name}),
        "pdf": f"{RESULTS}/figures/{name}.pdf",
    }


def task_inputs(task, path):
    """``[path]`` if ``task`` is enabled in the grid, else ``[]`` (optional rule inputs)."""
    return [path] if task in enabled_tasks() else []


def metrics_files():
    """The files of ``<results>/metrics/`` for ``dvc metrics show``, one row each:
    ``claims.json``, then one per (regularizer, target) of the navigation grid, named as
    summary.py names them. Plain files, not a ``directory()`` output, so no Snakemake
    marker file becomes a row."""
    if "navigation" not in enabled_tasks():
        return [f"{RESULTS}/metrics/claims.json"] if "adding" in enabled_tasks() else []
    return [f"{RESULTS}/metrics/claims.json",
            *(f"{RESULTS}/metrics/navigation_{r}_t{round(100 * float(t))}.json"
              for r, t in grid_cells("navigation"))]


def task_outputs(task):
    """Final targets of ``task``, from its ``geosparse.tasks.TASKS`` entry: the tidy runs
    and per-epoch history, its tables and figures, ``summary.md`` and the DVC metrics if
    the summary reports on it, and every run's own files. Those are final targets too: one
    deleted by hand is rebuilt (Snakemake does not rebuild a missing intermediate file
    whose consumers are up to date), and the tables that read it follow because their
    input is newer."""
    spec = TASKS[task]
    return [
        f"{RESULTS}/tidy/{task}_runs.csv",
        f"{RESULTS}/tidy/{task}_history.csv",
        *expand(f"{RESULTS}/tables/{task}_{{name}}.{{ext}}", name=spec.tables, ext=["csv", "md", "tex"]),
        *expand(f"{RESULTS}/figures/{task}_{{name}}.{{ext}}", name=spec.figures, ext=["png", "pdf"]),
        *([f"{RESULTS}/summary.md", *metrics_files()] if spec.summary else []),
        *(path for name in spec.run_files for path in run_files(task, name)),
    ]


def size_study(task):
    """Whether ``task``'s grid has several model sizes (``tasks.<task>.sizes``). Its tables
    compare regularizers at one size, so a size study builds the scaling table and
    figure instead, from the runs' metrics alone."""
    return len(sizes(task)) > 1


def scaling_outputs(upto):
    """The scaling table and figure of the navigation runs of Ng <= ``upto`` (rules
    ``table_navigation_scaling``, ``fig_navigation_scaling``)."""
    return [*expand(f"{RESULTS}/tables/navigation_scaling_upto{upto}.{{ext}}", ext=["csv", "md", "tex"]),
            *expand(f"{RESULTS}/figures/navigation_scaling_upto{upto}.{{ext}}", ext=["png", "pdf"])]


def scaling_records(upto):
    """``run_records`` of the navigation runs of Ng <= ``upto``, a size of the grid."""
    if int(upto) not in sizes("navigation"):
        raise WorkflowError(f"navigation_scaling_upto{upto}: {upto} is not a size of the grid; "
                            f"allowed values: {sizes('navigation')} (tasks.navigation.sizes)")
    return [r for r in run_records("navigation") if r["size"] <= int(upto)]


def all_outputs():
    """Final targets of every task in the config (``task_outputs``), each once; for a
    size study the scaling table and figure of every size and the runs' metrics."""
    paths = []
    for task in enabled_tasks():
        if size_study(task):
            paths += [*scaling_outputs(max(sizes(task))), *run_files(task, "metrics.json")]
        else:
            paths += task_outputs(task)
    return list(dict.fromkeys(paths))
