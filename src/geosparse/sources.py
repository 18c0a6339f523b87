"""The code a task's training runs, and its version: a digest of those source files.

The workflow passes ``code_version(task)`` to every training job as a parameter, so a
change to the code a run was trained with makes Snakemake train it again, and a change
elsewhere (sweeps, tables, the sparse-inference benchmark, the CLI's help) does not.
The files are found by reading imports, without importing anything (no torch): the
driver (``geosparse.training``), the task's module (``geosparse.tasks.TASKS``) and every
``geosparse`` module they import, transitively, plus the config schemas (their defaults
are part of every resolved run config).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from geosparse.tasks import TASKS

PACKAGE = Path(__file__).resolve().parent
DRIVER = "geosparse.training"


def module_file(module: str) -> Path | None:
    """The source file of ``geosparse`` module ``module``, or None (not in the package)."""
    parts = module.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> frozenset[str]:
    """``geosparse`` modules that ``path`` imports (``import a.b``, ``from a import b``)."""
    return _imported_modules(path.read_text(), str(path))


@functools.cache
def _imported_modules(source: str, filename: str) -> frozenset[str]:
    """``_imports`` of one source text, parsed once per process (the workflow asks for
    the code version of every task it plans, and the tasks share most files)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(name for name in found if module_file(name) is not None)


def training_sources(task: str) -> list[Path]:
    """Every file the training of ``task`` runs: modules reachable from the driver and
    the task's module, their packages' ``__init__``, and the config schemas; sorted."""
    todo = [DRIVER, TASKS[task].task_class.split(":")[0]]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        todo.extend(parents)
        todo.extend(_imports(module_file(module)))
    files = {module_file(module) for module in seen} | set((PACKAGE / "schemas").glob("*.yaml"))
    return sorted(files)


def code_version(task: str) -> str:
    """A digest of ``training_sources(task)`` (paths relative to the package and
    contents): equal exactly when the training code of ``task`` is."""
    digest = hashlib.sha256()
    for path in training_sources(task):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
