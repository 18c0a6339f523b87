"""The environment every job of the workflow runs in, set while this file is parsed
(local jobs, scripts and ``sbatch --export=ALL`` cluster jobs inherit it, and each job's
own parse sets it again): which geosparse it imports, the Snakemake version its runs
record, and the CPU kernels (``cpu_kernels``).
"""

import os
import sys
from pathlib import Path

import snakemake

SRC = str(Path(workflow.current_basedir).resolve().parents[1] / "src")
"""The geosparse package every job runs: this checkout's ``src/``, whatever the
environment (a venv with ``pip install -e .``, or the dependency-only conda env of
``--sdm conda``, which does not install the package). Jobs, scripts and cluster jobs
inherit the environment set here, and every parse of this file sets it again."""
sys.path.insert(0, SRC)

from geosparse.config import PORTABLE_CPU_KERNELS, SNAKEMAKE_ENV

_pythonpath = os.environ.get("PYTHONPATH", "")
os.environ.update({
    "PYTHONPATH": _pythonpath if _pythonpath.split(os.pathsep)[0] == SRC
    else os.pathsep.join(filter(None, [SRC, _pythonpath])),
    SNAKEMAKE_ENV: snakemake.__version__,
})

if config.get("cpu_kernels") == "portable":  # native or portable, validated next (common.smk)
    os.environ.update(PORTABLE_CPU_KERNELS)
