"""Navigation (path integration) beyond training (rules/train.smk): a pruning sweep, a
sparse-inference timing and a structure analysis per run (short CPU jobs: group
FOLLOW_UP_GROUP, so a cluster runs many in one allocation; benchmark files beside the
logs), and the connectivity extraction for the |W_hh| vs moduli-distance figure."""


rule sweep_navigation:
    """Prune one finished run further to each sweep level and evaluate."""
    input:
        metrics=f"{RUNS}/navigation/{RUN_ID}/metrics.json",
    output:
        f"{RUNS}/navigation/{RUN_ID}/sweep.json",
    params:
        levels=grid("navigation")["sweep_levels"],
        rundir=lambda wc, input: Path(input.metrics).parent,
    threads: 1
    log:
        f"{RESULTS}/logs/navigation/sweep/{RUN_ID}.log",
    benchmark:
        f"{RESULTS}/benchmarks/navigation/sweep/{RUN_ID}.tsv"
    group:
        FOLLOW_UP_GROUP
    conda:
        "../envs/geosparse.yaml"
    shell:
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "python -m geosparse sweep navigation --run {params.rundir:q} --levels {params.levels:q} "
        "--out {output:q} > {log:q} 2>&1"


rule connectivity_navigation:
    """|W_hh| against moduli distance for the geometric runs (first target and seed)."""
    input:
        [f"{RUNS}/navigation/{r['run_id']}/metrics.json" for r in geometric_runs("navigation")],
    output:
        f"{RESULTS}/tidy/navigation_connectivity.csv",
    params:
        runs=geometric_runs("navigation"),
    threads: 1
    log:
        f"{RESULTS}/logs/navigation/connectivity.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/extract_connectivity.py"


rule sparse_inference_navigation:
    """CPU latency, weight memory and accuracy of one finished run's sparse inference
    formats (`geosparse benchmark-inference`: dense, nn.RNN, CSR, CSR and BSR in
    geometry order). Timings are taken on whatever else the machine runs at the time:
    the JSON records the load average before and after."""
    input:
        metrics=f"{RUNS}/navigation/{RUN_ID}/metrics.json",
    output:
        f"{RUNS}/navigation/{RUN_ID}/inference.json",
    params:
        rundir=lambda wc, input: Path(input.metrics).parent,
        batches=grid("navigation")["sparse_inference"]["batches"],
        steps=grid("navigation")["sparse_inference"]["steps"],
        blocksize=grid("navigation")["sparse_inference"]["blocksize"],
        min_run_time=grid("navigation")["sparse_inference"]["min_run_time"],
    threads: grid("navigation")["sparse_inference"]["threads"]
    log:
        f"{RESULTS}/logs/navigation/inference/{RUN_ID}.log",
    benchmark:
        f"{RESULTS}/benchmarks/navigation/inference/{RUN_ID}.tsv"
    group:
        FOLLOW_UP_GROUP
    conda:
        "../envs/geosparse.yaml"
    shell:
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "python -m geosparse benchmark-inference --run {params.rundir:q} --out {output:q} "
        "--batch {params.batches:q} --steps {params.steps:q} --blocksize {params.blocksize:q} "
        "--min-run-time {params.min_run_time:q} --threads {threads} > {log:q} 2>&1"


rule structure_navigation:
    """Connectivity locality, ordered |W_hh| heatmap, rate maps and persistent homology of
    one finished run (geosparse.structure, geosparse.topology)."""
    input:
        metrics=f"{RUNS}/navigation/{RUN_ID}/metrics.json",
    output:
        f"{RUNS}/navigation/{RUN_ID}/structure.json",
    params:
        settings=grid("navigation")["structure"],
    threads: 1
    log:
        f"{RESULTS}/logs/navigation/structure/{RUN_ID}.log",
    benchmark:
        f"{RESULTS}/benchmarks/navigation/structure/{RUN_ID}.tsv"
    group:
        FOLLOW_UP_GROUP
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/structure_run.py"
