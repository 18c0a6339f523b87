"""The environments: pyproject's dependencies, the pip lock, the conda files, and the
versions a run records."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

from geosparse import runio

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}
"""conda-forge package names that differ from the PyPI distribution."""


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in (*project["dependencies"], *extras["test"], *extras["pipeline"])]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def _conda_packages(path: Path) -> set[str]:
    """PyPI names of a conda env file's conda (not pip) dependencies."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    names = (re.split(r"[=<>! ]", dep.split("::")[-1])[0] for dep in deps if isinstance(dep, str))
    return {CONDA_NAMES.get(name, name) for name in names}


def test_lock_pins_every_dependency_within_its_range():
    pins = _lock()
    for req in _pyproject_requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"requirements/lock.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements/lock.txt pins {name}=={pins[name]}, outside pyproject's {req}"
        )


def test_workflow_conda_env_has_no_path_and_the_package_dependencies():
    """The rules' env installs no package from a path (it breaks with --conda-prefix);
    the workflow imports this checkout's src/ instead. It holds every runtime and
    pipeline-script dependency, pyarrow included (rule wikitext2 runs in it and the
    WikiText-2 parquet mirror needs it)."""
    env_file = REPO / "workflow" / "envs" / "geosparse.yaml"
    env = yaml.safe_load(env_file.read_text())
    assert all(isinstance(dep, str) for dep in env["dependencies"]), "no pip section (the only way to a path)"
    packages = _conda_packages(env_file)
    needed = {r.name for r in _pyproject_requirements()} - {
        "pytest",
        "ruff",
        "snakemake",
        "snakemake-executor-plugin-slurm",
        "dvc",
    }  # test tools and the orchestrators run outside the rules' env
    assert needed <= packages, f"missing in {env_file.name}: {sorted(needed - packages)}"


def test_environment_yml_has_the_channels_and_packages_of_the_pipeline():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"][:2] == ["conda-forge", "bioconda"]  # snakemake lives on bioconda
    packages = _conda_packages(REPO / "environment.yml")
    missing = {r.name for r in _pyproject_requirements()} - packages
    assert not missing, f"environment.yml lacks {sorted(missing)}"


def test_versions_record_numpy_extras_and_the_snakemake_that_ran_the_job(monkeypatch):
    monkeypatch.delenv(runio.SNAKEMAKE_ENV, raising=False)
    alone = runio.versions("ripser")
    assert alone["snakemake"] == "none"
    assert alone["numpy"] == runio.package_version("numpy") != "none"
    assert alone["ripser"] == runio.package_version("ripser")
    assert runio.versions("no-such-package-xyz")["no-such-package-xyz"] == "none"
    monkeypatch.setenv(runio.SNAKEMAKE_ENV, "9.1.0")
    assert runio.versions()["snakemake"] == "9.1.0"
