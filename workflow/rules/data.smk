"""WikiText-2 for a language grid whose base config reads the real corpus
(`data.corpus: wikitext2`, the folder is its `data.dir`); the fixture corpus needs no rule."""

from geosparse.data import WIKITEXT2_SPEC

WIKITEXT2_DIR = next(
    (str(Path(f).parent) for f in (wikitext2_files("language") if "language" in config["tasks"] else [])),
    "data/wikitext-2",
)


rule wikitext2:
    """Fetch and verify WikiText-2 (`geosparse data wikitext2`; mirrors and checksum in
    src/geosparse/data/wikitext2.yaml). Offline it fails, with the reason in its log; a copy
    already in place (the three wiki.*.tokens files, e.g. from `geosparse data wikitext2
    --source <local zip or folder> --dest <dir>`) is used as it is: the spec is
    `ancient`, so only missing files start this job (Snakemake deletes a job's outputs
    before it runs)."""
    input:
        spec=ancient(os.path.relpath(WIKITEXT2_SPEC)),
    output:
        [f"{WIKITEXT2_DIR}/wiki.{split}.tokens" for split in WIKITEXT2_SPLITS],
    params:
        dest=lambda wc, output: Path(output[0]).parent,
    log:
        f"{RESULTS}/logs/data/wikitext2.log",
    conda:
        "../envs/geosparse.yaml"
    shell:
        "python -m geosparse data wikitext2 --dest {params.dest:q} --config {input.spec:q} > {log:q} 2>&1"


# Downloads run where Snakemake runs (compute nodes often have no internet).
localrules:
    wikitext2,
