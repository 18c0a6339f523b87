"""Figures (seaborn), each from tidy CSVs only."""


rule fig_navigation_error_vs_sparsity:
    input:
        "results/tidy/navigation_sweep.csv",
    output:
        figure("navigation_error_vs_sparsity", "../report/fig_error_vs_sparsity.rst"),
    log:
        "results/logs/navigation/fig_error_vs_sparsity.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_error_vs_sparsity.py"


rule fig_navigation_comparison:
    input:
        runs="results/tidy/navigation_runs.csv",
        error="results/tables/navigation_error.csv",
    output:
        figure("navigation_comparison", "../report/fig_comparison.rst"),
    log:
        "results/logs/navigation/fig_comparison.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_comparison.py"


rule fig_navigation_connectivity:
    input:
        "results/tidy/navigation_connectivity.csv",
    output:
        figure("navigation_connectivity", "../report/fig_connectivity.rst"),
    log:
        "results/logs/navigation/fig_connectivity.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_connectivity.py"
