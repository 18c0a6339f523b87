"""Tidy CSVs (any task), the navigation tables and the summary."""


rule aggregate_runs:
    """All metrics.json files of a task -> results/tidy/<task>_runs.csv."""
    input:
        lambda wc: run_files(wc.task, "metrics.json"),
    output:
        "results/tidy/{task}_runs.csv",
    params:
        runs=lambda wc: run_records(wc.task),
    log:
        "results/logs/{task}/aggregate_runs.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_runs.py"


rule aggregate_sweeps:
    """All sweep.json files of a task -> results/tidy/<task>_sweep.csv."""
    input:
        lambda wc: run_files(wc.task, "sweep.json"),
    output:
        "results/tidy/{task}_sweep.csv",
    params:
        runs=lambda wc: run_records(wc.task),
    log:
        "results/logs/{task}/aggregate_sweeps.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_sweeps.py"


rule aggregate_history:
    """The per-epoch history of every run of a task -> results/tidy/<task>_history.csv."""
    input:
        lambda wc: run_files(wc.task, "metrics.json"),
    output:
        "results/tidy/{task}_history.csv",
    params:
        runs=lambda wc: run_records(wc.task),
    log:
        "results/logs/{task}/aggregate_history.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_history.py"


rule aggregate_inference:
    """All inference.json files of the navigation grid -> results/tidy/navigation_inference.csv."""
    input:
        run_files("navigation", "inference.json"),
    output:
        "results/tidy/navigation_inference.csv",
    params:
        runs=run_records("navigation"),
    log:
        "results/logs/navigation/aggregate_inference.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_inference.py"


rule table_navigation_inference:
    """Sparse inference: speed-up, memory and block density per regularizer and format."""
    input:
        inference="results/tidy/navigation_inference.csv",
    output:
        **table_outputs("navigation_inference", "../report/table_navigation_inference.rst"),
    log:
        "results/logs/navigation/table_inference.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_inference.py"


rule table_navigation_error:
    """Error mean (std) per regularizer and target, paper values beside them."""
    input:
        runs="results/tidy/navigation_runs.csv",
        paper=config["paper_results"]["navigation"],
    output:
        **table_outputs("navigation_error", "../report/table_navigation_error.rst"),
    log:
        "results/logs/navigation/table_error.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_error.py"


rule table_navigation_lottery:
    """Lottery-ticket control: sparse vs retrained error, paper values beside them."""
    input:
        runs="results/tidy/navigation_runs.csv",
        paper=config["paper_results"]["navigation"],
    output:
        **table_outputs("navigation_lottery", "../report/table_navigation_lottery.rst"),
    log:
        "results/logs/navigation/table_lottery.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_lottery.py"


rule summary:
    """The paper's claims in words with numbers, and results/metrics.json for DVC; the
    language and adding tables (when their grids are enabled) and the sparse-inference
    table as measured numbers."""
    input:
        error="results/tables/navigation_error.csv",
        lottery="results/tables/navigation_lottery.csv",
        runs="results/tidy/navigation_runs.csv",
        inference="results/tables/navigation_inference.csv",
        language=["results/tables/language_scores.csv"] if "language" in enabled_tasks() else [],
        adding=["results/tables/adding_mse.csv"] if "adding" in enabled_tasks() else [],
    output:
        summary="results/summary.md",
        metrics="results/metrics.json",
    log:
        "results/logs/summary.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/summary.py"
