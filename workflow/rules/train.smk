"""One training job per run of every task's grid (`geosparse train <task>`): threads,
memory, time limit and GPU from the task's grid (`tasks.<task>.*`), the language corpus
as an extra input when its base config reads WikiText-2, the version of the training code
as a parameter (a code change retrains), and a benchmark file per run (wall time and
memory: <results>/benchmarks/, to size a cluster's time limits from one's own runs)."""


rule train:
    """Train one run (task, named regularizer, model size, target, seed)."""
    input:
        config=lambda wc: grid(wc.task)["base_config"],
        extends=lambda wc: config_chain(grid(wc.task)["base_config"])[1:],
        # The real corpus comes from rule wikitext2 (data.smk); nothing for other tasks.
        data=lambda wc: wikitext2_files(wc.task),
    output:
        # model_sparse.pt (and model_lottery.pt) are written beside it unless the run
        # diverged; downstream rules read them through metrics.json's status.
        metrics=f"{RUNS}/{{task}}/{RUN_ID}/metrics.json",
    wildcard_constraints:
        task="|".join(config["tasks"]),
    params:
        sets=lambda wc: set_args(wc.task, wc.regularizer, wc.size, wc.target, wc.seed),
        device=lambda wc: grid(wc.task)["device"],
        outdir=lambda wc, output: Path(output.metrics).parent,
        launcher=lambda wc: gpu_launcher(wc.task),
        # not used by the command: its change (the training code's) reruns the job
        code=lambda wc: training_code(wc.task),
    threads: lambda wc: grid(wc.task)["threads"]
    resources:
        mem_mb=lambda wc: grid(wc.task)["mem_mb"],
        runtime=lambda wc: grid(wc.task)["runtime"],
        gpu=lambda wc: gpus(wc.task),
    log:
        f"{RESULTS}/logs/{{task}}/train/{RUN_ID}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/train/{RUN_ID}.tsv"
    conda:
        "../envs/geosparse.yaml"
    shell:
        # The checkpoint only serves to resume an interrupted job; a finished run drops
        # it, so a rerun (changed params or inputs) starts fresh.
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "{params.launcher}python -m geosparse train {wildcards.task} --config {input.config:q} --seed {wildcards.seed} "
        "--out {params.outdir:q} --device {params.device:q} {params.sets} > {log:q} 2>&1 "
        "&& rm -f {params.outdir:q}/checkpoint.pt"
