"""geosparse.gpu_slots: concurrent GPU jobs on one machine get distinct, balanced GPUs
(checked on a CPU with a stated device list; no GPU is touched)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import subprocess_env

# the job: report the GPU it was given, then hold its slot until the test lets it go
JOB = (
    "import os, sys, time, pathlib; print(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), flush=True); "
    "release = pathlib.Path(sys.argv[1])\nwhile not release.exists(): time.sleep(0.02)"
)


class Jobs:
    """Jobs started through ``python -m geosparse.gpu_slots``; ``release()`` ends them."""

    def __init__(self, tmp_path: Path):
        self.slots, self.flag, self.started = tmp_path / "slots", tmp_path / "release", []

    def start(self, devices: str | None) -> subprocess.Popen:
        env = {**subprocess_env(), "GEOSPARSE_GPU_SLOTS": str(self.slots)}
        env.pop("CUDA_VISIBLE_DEVICES", None)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        job = subprocess.Popen(
            [sys.executable, "-m", "geosparse.gpu_slots", sys.executable, "-c", JOB, str(self.flag)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.started.append(job)
        return job

    def one_by_one(self, devices: str | None, n: int) -> list[str]:
        """The GPUs of ``n`` jobs, each started once the one before holds its GPU."""
        return [self.start(devices).stdout.readline().strip() for _ in range(n)]

    def release(self) -> None:
        self.flag.touch()
        for job in self.started:
            assert job.wait(timeout=30) == 0
        self.started.clear()
        self.flag.unlink()


@pytest.fixture
def jobs(tmp_path):
    started = Jobs(tmp_path)
    yield started
    started.release()


def test_concurrent_jobs_get_distinct_gpus_then_k_per_gpu(jobs):
    """4 GPUs: 4 concurrent jobs get one each; 8 (K = 2 jobs per GPU) two each."""
    assert jobs.one_by_one("0,1,2,3", 4) == ["0", "1", "2", "3"]
    assert jobs.one_by_one("0,1,2,3", 4) == ["0", "1", "2", "3"]


def test_a_finished_job_frees_its_gpu(jobs):
    assert jobs.one_by_one("0,1", 2) == ["0", "1"]
    jobs.release()  # both end: the kernel drops their locks
    assert jobs.one_by_one("0,1", 1) == ["0"]


def test_jobs_started_at_the_same_moment_spread(jobs):
    """The choice is serialised: 6 jobs started together on 3 GPUs get two each."""
    started = [jobs.start("0,1,2") for _ in range(6)]
    assert sorted(job.stdout.readline().strip() for job in started) == ["0", "0", "1", "1", "2", "2"]


def test_gpu_ids_are_kept_as_given_and_without_gpus_nothing_is_set(jobs):
    assert jobs.one_by_one("GPU-1f2e.3/4, 7", 2) == ["GPU-1f2e.3/4", "7"]
    assert jobs.one_by_one("", 1) == [""]  # none visible: the command runs unchanged
