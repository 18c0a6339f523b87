"""Figures (seaborn), each from tidy CSVs only."""


rule fig_navigation_error_vs_sparsity:
    input:
        f"{RESULTS}/tidy/navigation_sweep.csv",
    output:
        figure("navigation_error_vs_sparsity", "../report/fig_error_vs_sparsity.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_error_vs_sparsity.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_error_vs_sparsity.py"


rule fig_navigation_comparison:
    input:
        runs=f"{RESULTS}/tidy/navigation_runs.csv",
        error=f"{RESULTS}/tables/navigation_error.csv",
    output:
        figure("navigation_comparison", "../report/fig_comparison.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_comparison.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_comparison.py"


rule fig_navigation_connectivity:
    input:
        f"{RESULTS}/tidy/navigation_connectivity.csv",
    output:
        figure("navigation_connectivity", "../report/fig_connectivity.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_connectivity.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_connectivity.py"


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
