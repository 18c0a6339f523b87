"""Tidy CSVs (any task), every table and the summary."""


rule aggregate_runs:
    """All metrics.json files of a task -> results/<grid>/tidy/<task>_runs.csv."""
    input:
        lambda wc: run_files(wc.task, "metrics.json"),
    output:
        f"{RESULTS}/tidy/{{task}}_runs.csv",
    params:
        runs=lambda wc: run_records(wc.task),
    log:
        f"{RESULTS}/logs/{{task}}/aggregate_runs.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_runs.py"


rule aggregate_sweeps:
    """All sweep.json files of a task -> results/<grid>/tidy/<task>_sweep.csv."""
    input:
        lambda wc: run_files(wc.task, "sweep.json"),
    output:
        f"{RESULTS}/tidy/{{task}}_sweep.csv",
    params:
        runs=lambda wc: run_records(wc.task),
    log:
        f"{RESULTS}/logs/{{task}}/aggregate_sweeps.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_sweeps.py"


rule aggregate_history:
    """The per-epoch history of every run of a task -> results/<grid>/tidy/<task>_history.csv."""
    input:
        lambda wc: run_files(wc.task, "metrics.json"),
    output:
        f"{RESULTS}/tidy/{{task}}_history.csv",
    params:
        runs=lambda wc: run_records(wc.task),
    log:
        f"{RESULTS}/logs/{{task}}/aggregate_history.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_history.py"


rule aggregate_inference:
    """All inference.json files of the navigation grid -> results/<grid>/tidy/navigation_inference.csv."""
    input:
        run_files("navigation", "inference.json"),
    output:
        f"{RESULTS}/tidy/navigation_inference.csv",
    params:
        runs=run_records("navigation"),
    log:
        f"{RESULTS}/logs/navigation/aggregate_inference.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_inference.py"


rule aggregate_structure:
    """All structure.json files of the navigation grid -> results/<grid>/tidy/navigation_{structure,
    heatmaps,rate_maps,persistence}.csv."""
    input:
        run_files("navigation", "structure.json"),
    output:
        structure=f"{RESULTS}/tidy/navigation_structure.csv",
        heatmaps=f"{RESULTS}/tidy/navigation_heatmaps.csv",
        rate_maps=f"{RESULTS}/tidy/navigation_rate_maps.csv",
        persistence=f"{RESULTS}/tidy/navigation_persistence.csv",
    params:
        runs=run_records("navigation"),
        first=first_cell("navigation"),
    log:
        f"{RESULTS}/logs/navigation/aggregate_structure.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/aggregate_structure.py"


rule table_navigation_structure:
    """Locality of W_hh and long-lived persistent-homology bars per regularizer and target."""
    input:
        f"{RESULTS}/tidy/navigation_structure.csv",
    output:
        **table_outputs("navigation_structure", "../report/table_navigation_structure.rst"),
    log:
        f"{RESULTS}/logs/navigation/table_structure.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_structure.py"


rule table_navigation_inference:
    """Sparse inference: speed-up, memory and block density per regularizer and format."""
    input:
        inference=f"{RESULTS}/tidy/navigation_inference.csv",
    output:
        **table_outputs("navigation_inference", "../report/table_navigation_inference.rst"),
    log:
        f"{RESULTS}/logs/navigation/table_inference.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_inference.py"


rule table_navigation_error:
    """Error mean (std) per regularizer and target, paper values beside them."""
    input:
        runs=f"{RESULTS}/tidy/navigation_runs.csv",
        paper=config["paper_results"]["navigation"],
    output:
        **table_outputs("navigation_error", "../report/table_navigation_error.rst"),
    log:
        f"{RESULTS}/logs/navigation/table_error.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_error.py"


rule table_navigation_scaling:
    """Error vs model size Ng per regularizer (the runs of Ng <= upto; larger sizes of the
    grid are rows marked "not run"), the ratio control / geometric per size, the paper's
    values at its Ng."""
    input:
        runs=lambda wc: [f"{RUNS}/navigation/{r['run_id']}/metrics.json" for r in scaling_records(wc.upto)],
        paper=config["paper_results"]["navigation"],
    output:
        **table_outputs("navigation_scaling_upto{upto}", "../report/table_navigation_scaling.rst"),
    params:
        runs=lambda wc: scaling_records(wc.upto),
        cells=lambda wc: run_records("navigation"),
        ratio=[config["claims"]["navigation"]["controls"][0], config["claims"]["navigation"]["geometric"][0]],
    log:
        f"{RESULTS}/logs/navigation/table_scaling_upto{{upto}}.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_scaling.py"


rule table_navigation_lottery:
    """Lottery-ticket control: sparse vs retrained error, paper values beside them."""
    input:
        runs=f"{RESULTS}/tidy/navigation_runs.csv",
        paper=config["paper_results"]["navigation"],
    output:
        **table_outputs("navigation_lottery", "../report/table_navigation_lottery.rst"),
    log:
        f"{RESULTS}/logs/navigation/table_lottery.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_navigation_lottery.py"


rule table_language:
    """Test loss / perplexity / accuracy per regularizer and target, with the corpus."""
    input:
        runs=f"{RESULTS}/tidy/language_runs.csv",
    output:
        **table_outputs("language_scores", "../report/table_language_scores.rst"),
    log:
        f"{RESULTS}/logs/language/table_scores.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_language.py"


rule table_adding:
    """Test MSE per regularizer and target beside the constant-prediction baseline."""
    input:
        runs=f"{RESULTS}/tidy/adding_runs.csv",
        history=f"{RESULTS}/tidy/adding_history.csv",
    output:
        **table_outputs("adding_mse", "../report/table_adding_mse.rst"),
    params:
        claims=config["claims"]["adding"],
    log:
        f"{RESULTS}/logs/adding/table_mse.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_adding.py"


rule summary:
    """The paper's claims in words with numbers, and results/<grid>/metrics/ for DVC; the
    language and adding tables (when their grids are enabled) and the sparse-inference
    table as measured numbers."""
    input:
        error=task_inputs("navigation", f"{RESULTS}/tables/navigation_error.csv"),
        lottery=task_inputs("navigation", f"{RESULTS}/tables/navigation_lottery.csv"),
        runs=task_inputs("navigation", f"{RESULTS}/tidy/navigation_runs.csv"),
        inference=task_inputs("navigation", f"{RESULTS}/tables/navigation_inference.csv"),
        language=task_inputs("language", f"{RESULTS}/tables/language_scores.csv"),
        adding=task_inputs("adding", f"{RESULTS}/tables/adding_mse.csv"),
    output:
        summary=report(f"{RESULTS}/summary.md", caption="../report/summary.rst", category="Verdicts"),
        metrics=metrics_files(),
    params:
        claims=config["claims"],
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/summary.py"
