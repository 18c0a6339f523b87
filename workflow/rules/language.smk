"""Language modelling (WikiText-2, or the labelled FIXTURE corpus): one training job per
run; the per-epoch validation losses go to results/<grid>/tidy/language_history.csv."""


rule train_language:
    """Train one run of the grid (`geosparse train language`)."""
    input:
        config=grid("language")["base_config"],
        extends=config_chain(grid("language")["base_config"])[1:],
        # The real corpus comes from rule wikitext2 (data.smk); the fixture corpus is
        # read from its data.dir as it is.
        data=wikitext2_files("language"),
    output:
        metrics=f"{RESULTS}/language/{RUN_ID}/metrics.json",
    params:
        sets=lambda wc: set_args("language", wc.regularizer, wc.target),
        device=grid("language")["device"],
        outdir=lambda wc, output: Path(output.metrics).parent,
    threads: grid("language")["threads"]
    resources:
        mem_mb=grid("language")["mem_mb"],
        runtime=grid("language")["runtime"],
        gpu=gpus("language"),
    log:
        f"{RESULTS}/logs/language/train/{RUN_ID}.log",
    conda:
        "../envs/geosparse.yaml"
    shell:
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "geosparse train language --config {input.config:q} --seed {wildcards.seed} "
        "--out {params.outdir:q} --device {params.device:q} {params.sets} > {log:q} 2>&1 "
        "&& rm -f {params.outdir:q}/checkpoint.pt"


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


rule fig_language_val_loss:
    """Validation loss per epoch and regularizer (the stability claim)."""
    input:
        history=f"{RESULTS}/tidy/language_history.csv",
        runs=f"{RESULTS}/tidy/language_runs.csv",
    output:
        figure("language_val_loss", "../report/fig_language_val_loss.rst"),
    log:
        f"{RESULTS}/logs/language/fig_val_loss.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_language_val_loss.py"


localrules:
    table_language,
    fig_language_val_loss,
