"""Figures (seaborn), each from tidy CSVs only."""


rule fig_navigation_error_vs_sparsity:
    input:
        sweep=f"{RESULTS}/tidy/navigation_sweep.csv",
        paper=config["paper_results"]["navigation"],
    output:
        **figure("navigation_error_vs_sparsity", "../report/fig_error_vs_sparsity.rst"),
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
        **figure("navigation_comparison", "../report/fig_comparison.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_comparison.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_comparison.py"


rule fig_navigation_scaling:
    """Error vs Ng (log2 axis) per regularizer, mean and std over seeds, the paper's points."""
    input:
        table=f"{RESULTS}/tables/navigation_scaling_upto{{upto}}.csv",
    output:
        **figure("navigation_scaling_upto{upto}", "../report/fig_scaling.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_scaling_upto{{upto}}.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_scaling.py"


rule fig_navigation_connectivity:
    input:
        f"{RESULTS}/tidy/navigation_connectivity.csv",
    output:
        **figure("navigation_connectivity", "../report/fig_connectivity.rst"),
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
        **figure("language_val_loss", "../report/fig_language_val_loss.rst"),
    log:
        f"{RESULTS}/logs/language/fig_val_loss.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_language_val_loss.py"


rule fig_adding_val_mse:
    """Validation MSE against the sparsity reached, per regularizer (the stability claim)."""
    input:
        history=f"{RESULTS}/tidy/adding_history.csv",
    output:
        **figure("adding_val_mse", "../report/fig_adding_val_mse.rst"),
    params:
        claims=config["claims"]["adding"],
    log:
        f"{RESULTS}/logs/adding/fig_val_mse.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_adding_val_mse.py"


rule fig_navigation_heatmaps:
    input:
        heatmaps=f"{RESULTS}/tidy/navigation_heatmaps.csv",
        structure=f"{RESULTS}/tidy/navigation_structure.csv",
    output:
        **figure("navigation_heatmaps", "../report/fig_heatmaps.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_heatmaps.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_heatmaps.py"


rule fig_navigation_rate_maps:
    input:
        f"{RESULTS}/tidy/navigation_rate_maps.csv",
    output:
        **figure("navigation_rate_maps", "../report/fig_rate_maps.rst"),
    log:
        f"{RESULTS}/logs/navigation/fig_rate_maps.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_rate_maps.py"


rule fig_navigation_persistence:
    input:
        bars=f"{RESULTS}/tidy/navigation_persistence.csv",
        structure=f"{RESULTS}/tidy/navigation_structure.csv",
    output:
        **figure("navigation_persistence", "../report/fig_persistence.rst"),
    params:
        first=first_cell("navigation"),
    log:
        f"{RESULTS}/logs/navigation/fig_persistence.log",
    conda:
        "../envs/geosparse.yaml"
    script:
        "../scripts/fig_persistence.py"
