# Kept because `snakemake` and `dvc repro` run from the repository root (the workflow is
# workflow/Snakefile); an include does not carry its default target over, hence rule default.
include: "workflow/Snakefile"


localrules:
    default,


rule default:
    """`snakemake` with no target: rule `all` of workflow/Snakefile."""
    input:
        rules.all.input,
    default_target: True
