"""geosparse.host_memory: freed blocks stay in the process instead of going back to the
kernel (and being faulted in again by the next step)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from conftest import subprocess_env

# resident memory (MB) given back when a fresh 24 MB tensor is freed: by default glibc
# serves a block that large with mmap and unmaps it on free
SCRIPT = """
import resource, sys, torch
from geosparse.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
block = torch.ones(6 * 2**20)
held = resident_mb()
del block
print(held - resident_mb())
"""


def _released_mb(mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=subprocess_env(), check=True
    )
    return float(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_a_freed_block_stays_in_the_process():
    assert _released_mb("default") > 20
    assert _released_mb("keep") < 1
