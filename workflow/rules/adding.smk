"""Adding problem (paper v2): one training job per run, test MSE against the 0.167
baseline of always predicting 1."""


rule train_adding:
    """Train one run of the grid (`geosparse train adding`)."""
    input:
        config=grid("adding")["base_config"],
        extends=config_chain(grid("adding")["base_config"])[1:],
    output:
        metrics=f"{RESULTS}/adding/{RUN_ID}/metrics.json",
    params:
        sets=lambda wc: set_args("adding", wc.regularizer, wc.target),
        device=grid("adding")["device"],
        outdir=lambda wc, output: Path(output.metrics).parent,
    threads: grid("adding")["threads"]
    resources:
        mem_mb=grid("adding")["mem_mb"],
        runtime=grid("adding")["runtime"],
        gpu=gpus("adding"),
    log:
        f"{RESULTS}/logs/adding/train/{RUN_ID}.log",
    conda:
        "../envs/geosparse.yaml"
    shell:
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "geosparse train adding --config {input.config:q} --seed {wildcards.seed} "
        "--out {params.outdir:q} --device {params.device:q} {params.sets} > {log:q} 2>&1 "
        "&& rm -f {params.outdir:q}/checkpoint.pt"


rule table_adding:
    """Test MSE per regularizer and target beside the constant-prediction baseline."""
    input:
        runs=f"{RESULTS}/tidy/adding_runs.csv",
    output:
        **table_outputs("adding_mse", "../report/table_adding_mse.rst"),
    log:
        f"{RESULTS}/logs/adding/table_mse.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/table_adding.py"


localrules:
    table_adding,
