"""Run configuration: YAML files, ``--set key=value`` overrides, schema validation.

A config file may name a parent with ``extends: other.yaml`` (path relative to the
file); the child is deep-merged over the parent. Files are read as UTF-8 text of at most
``MAX_CONFIG_BYTES``; YAML nesting deeper than ``MAX_DEPTH`` levels, aliases that expand
to more than ``MAX_NODES`` values (a "billion laughs" file) and recursive aliases are
refused while parsing, as is a ``--set`` key of more than ``MAX_DEPTH`` parts. A schema's
``integer`` is an int (``16.0`` is refused: sizes must not arrive as floats). Every resolved config is validated
against the task's JSON schema (``geosparse/schemas/<task>.schema.yaml``) before any
work starts; errors name the key and, where the schema has them, the allowed values.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SNAKEMAKE_ENV = "GEOSPARSE_SNAKEMAKE_VERSION"
"""Environment variable the Snakemake workflow sets for its jobs (workflow/rules/environment.smk),
so a run records the Snakemake that made it (``runio.versions``). Here, not in runio,
because the workflow imports this module and must not import torch."""

PORTABLE_CPU_KERNELS = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
"""Environment that pins torch's CPU kernel paths to AVX2 (MKL's conditional numerical
reproducibility branch and ATen's vectorised kernels), so a CPU with AVX-512 computes
what an AVX2-only CPU computes. Measured on an AVX-512 Xeon (README, "Reproducibility"):
identical metrics whether MKL and oneDNN may use AVX-512 or only AVX2, at 72 % of the
native speed. Must be set before torch is imported (the workflow's ``cpu_kernels:
portable`` does it for every job)."""


class InputError(ValueError):
    """Bad input from the user (a file, a folder, an option, a value): the CLI exits 2
    with the message alone. Any other exception is a bug and keeps its traceback."""


class ConfigError(InputError):
    """A config file or value is invalid; the message names the key."""


MAX_DEPTH = 32
"""Deepest nesting of a YAML document, and most parts of a ``--set`` key."""
MAX_NODES = 100_000
"""Most values a YAML document may hold once its aliases are expanded."""
MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (1 MiB)."""


def read_text_file(path: str | Path, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a file of at most ``max_bytes``; a missing file, a folder, an
    unreadable, binary, non-UTF-8 or oversized file raise InputError naming ``what`` and
    the file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not a file") from None
    except OSError as error:
        raise InputError(f"{what} {path}: cannot read it ({error.strerror})") from None
    if len(data) > max_bytes:
        raise InputError(f"{what} {path} is larger than {max_bytes} bytes")
    if b"\0" in data:
        raise InputError(f"{what} {path} is a binary file, not UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` / ``1E5`` as floats (YAML 1.2), not strings,
    refuses a key repeated in one mapping (PyYAML keeps the last one silently), nesting
    deeper than ``MAX_DEPTH`` and aliases expanding beyond ``MAX_NODES`` values."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def fetch_flow_collection_start(self, token_class: type) -> None:
        """Refuse deep ``[[[...`` while scanning (the scanner is quadratic in flow depth)."""
        super().fetch_flow_collection_start(token_class)
        if self.flow_level > MAX_DEPTH:
            raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels at line {self.get_mark().line + 1}")

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels at line {line}")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}, set()) > MAX_NODES:
            raise ConfigError(f"aliases expand to more than {MAX_NODES} values (an alias bomb?)")
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: SafeLoader merges it below
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise ConfigError(f"key {key!r} at line {line} is not a plain value") from None
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} at line {line} (first at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values in ``node`` with every alias expanded (memoised per node: fast for a bomb);
    stops counting once above ``MAX_NODES``. A node containing itself is refused."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ConfigError(f"a recursive alias at line {node.start_mark.line + 1}")
    open_nodes.add(id(node))
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, sizes, open_nodes)
        if size > MAX_NODES:
            break
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with ``_Loader``."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base``."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml_file(path: str | Path) -> dict:
    """One config file as a mapping; a missing file, a YAML syntax error (with its line),
    a repeated key or a top level that is not a mapping raise ConfigError naming the file."""
    path = Path(path)
    text = read_text_file(path, "config file")
    try:
        data = parse_yaml(text) or {}
    except ConfigError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"config file {path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def extends_chain(path: str | Path) -> list[Path]:
    """``path`` and every file it ``extends``, child first (``extends`` is a path relative
    to the file). A cycle or an ``extends`` that is not one file name raises ConfigError."""
    chain = [Path(path)]
    while True:
        parent = read_yaml_file(chain[-1]).get("extends")
        if parent is None:
            return chain
        if not isinstance(parent, str):
            raise ConfigError(f"config file {chain[-1]}: 'extends' must be one file name, got {parent!r}")
        nxt = chain[-1].parent / parent
        if any(nxt.resolve() == p.resolve() for p in chain):
            cycle = " -> ".join(str(p) for p in [*chain, nxt])
            raise ConfigError(f"config files extend each other in a cycle: {cycle}")
        chain.append(nxt)


def load_yaml(path: str | Path) -> dict:
    """Read a config file, resolving ``extends`` chains (parents first, children merged
    over them)."""
    merged: dict = {}
    for file in reversed(extends_chain(path)):
        data = read_yaml_file(file)
        data.pop("extends", None)
        merged = deep_merge(merged, data)
    return merged


def apply_overrides(config: dict, assignments: list[str]) -> dict:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``0.1``, ``true``, ``[a]``)."""
    config = copy.deepcopy(config)
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {assignment!r}")
        node = config
        if key.count(".") >= MAX_DEPTH:
            raise ConfigError(f"--set {key[:80]}...: a key of more than {MAX_DEPTH} parts")
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        try:
            node[leaf] = parse_yaml(raw)
        except (yaml.YAMLError, ConfigError) as error:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({error})") from None
    return config


SHARED_SCHEMAS = ("regularizer",)
"""Schema files referenced by the task schemas (``{$ref: "<name>.schema.yaml"}``)."""


def load_schema(task: str) -> dict:
    """The JSON schema (as a dict, the caller's own copy) of ``task``'s config, or of a
    shared section."""
    return copy.deepcopy(_parsed_schema(task))


@functools.cache
def _parsed_schema(task: str) -> dict:
    """A schema file of the package, parsed once per process (the workflow resolves
    dozens of run configs while it plans a grid)."""
    text = resources.files("geosparse.schemas").joinpath(f"{task}.schema.yaml").read_text()
    return yaml.safe_load(text)


@functools.cache
def _registry() -> Registry:
    """The shared schemas, addressable by file name from the task schemas."""
    return Registry().with_resources(
        (f"{name}.schema.yaml", Resource.from_contents(load_schema(name), default_specification=DRAFT202012))
        for name in SHARED_SCHEMAS
    )


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    message = error.message
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and "properties" in schema:
        message += f"; allowed keys: {sorted(schema['properties'])}"
    if "enum" in schema and "is not one of" not in message:
        message += f"; allowed values: {schema['enum']}"
    if "oneOf" in schema:  # e.g. regularizer.scale: a number or one of some names
        options = []
        for branch in schema["oneOf"]:
            if "enum" in branch:
                options.extend(repr(v) for v in branch["enum"])
            elif "type" in branch:
                bound = f" >= {branch['minimum']}" if "minimum" in branch else ""
                options.append(f"a {branch['type']}{bound}")
        message += f"; allowed values: {', '.join(options)}"
    return f"config key {key!r}: {message}"


def nonfinite_keys(value: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every NaN or infinite number in a config (``1e400`` and ``.inf``
    parse as inf, ``.nan`` as NaN; a JSON-schema bound never rejects NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [prefix or "<top level>"]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [key for k, v in items for key in nonfinite_keys(v, f"{prefix}.{k}" if prefix else str(k))]


def nonfinite_errors(config: dict) -> list[str]:
    """One message per NaN / infinite number of ``config``, naming its key."""
    return [
        f"config key {key!r}: must be a finite number (NaN and infinity are not allowed)"
        for key in nonfinite_keys(config)
    ]


def _is_integer(checker: object, value: object) -> bool:
    """A JSON-schema ``integer`` is an int here, not a float that happens to be whole."""
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def schema_errors(instance: dict, schema: dict) -> list[str]:
    """One message per problem of ``instance`` against a JSON ``schema`` (draft 2020-12,
    the shared section schemas resolvable): NaN/inf numbers first, then the schema's
    errors by key, each naming the key and the allowed keys or values. Used for run
    configs and, by the workflow, for the pipeline config."""
    validator = _Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return nonfinite_errors(instance) + [_describe(e) for e in errors]


def validate(config: dict, task: str) -> dict:
    """Validate ``config`` against ``task``'s schema; raise ConfigError naming the key.
    Every number must also be finite."""
    messages = schema_errors(config, load_schema(task))
    if messages:
        raise ConfigError("invalid config:\n  " + "\n  ".join(messages))
    return config


def resolve(path: str | Path, task: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load, override and validate a config file for ``task``."""
    return resolve_loaded(load_yaml(path), task, overrides)


def resolve_loaded(loaded: dict, task: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """``resolve`` of a config file already read with ``load_yaml`` (left unchanged): the
    workflow reads each base config once and resolves it for every run of its grid."""
    config = apply_overrides(loaded, overrides or [])
    config.setdefault("task", task)
    if config["task"] != task:
        raise ConfigError(f"config key 'task': file is for {config['task']!r}, not {task!r}")
    return validate(config, task)
