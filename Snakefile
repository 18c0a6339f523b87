# Entry point at the repository root for `snakemake` and DVC; the workflow lives in
# workflow/ (Snakemake's recommended layout). An `include:` does not carry the included
# file's default target over, hence the one-line rule below.
include: "workflow/Snakefile"


localrules:
    default,


rule default:
    """`snakemake` with no target: rule `all` of workflow/Snakefile."""
    input:
        rules.all.input,
    default_target: True
