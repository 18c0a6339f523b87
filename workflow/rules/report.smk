"""The grid's HTML report (``snakemake --report``), written by the workflow's ``onsuccess``
handler once every final target exists.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError


REPORT = f"{RESULTS}/report.html"
"""The grid's HTML report, written when a run that built every final target succeeds."""


def write_report():
    """``snakemake --report`` for this grid, with this run's full config (so ``--config``
    overrides carry over), after a successful run in which every final target exists
    (a run of a single target makes no report). Its log: ``<results>/logs/report.log``."""
    if not all(Path(path).exists() for path in all_outputs()):
        return
    log = Path(RESULTS) / "logs" / "report.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(json.loads(json.dumps(config)), fh)
    try:
        with log.open("w") as out:
            done = subprocess.run(
                [sys.executable, "-m", "snakemake", "--nolock", "--snakefile",
                 str(workflow.main_snakefile), "--configfile", fh.name, "--report", REPORT],
                stdout=out, stderr=subprocess.STDOUT, check=False)
    finally:
        Path(fh.name).unlink()
    if done.returncode != 0:
        raise WorkflowError(f"the report {REPORT} could not be written; see {log}")
    print(f"Report: {REPORT}", file=sys.stderr)
