"""Run configuration: YAML files, ``--set key=value`` overrides, schema validation.

A config file may name a parent with ``extends: other.yaml`` (path relative to the
file); the child is deep-merged over the parent. Every resolved config is validated
against the task's JSON schema (``geosparse/schemas/<task>.schema.yaml``) before any
work starts; errors name the key and, where the schema has them, the allowed values.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` / ``1E5`` as floats (YAML 1.2), not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with ``_Loader``."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the key."""


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base``."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: str | Path) -> dict:
    """Read a config file, resolving ``extends`` chains."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with path.open() as fh:
        data = parse_yaml(fh.read()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    return deep_merge(load_yaml(path.parent / parent), data)


def apply_overrides(config: dict, assignments: list[str]) -> dict:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``0.1``, ``true``, ``[a]``)."""
    config = copy.deepcopy(config)
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {assignment!r}")
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[leaf] = parse_yaml(raw)
    return config


SHARED_SCHEMAS = ("regularizer",)
"""Schema files referenced by the task schemas (``{$ref: "<name>.schema.yaml"}``)."""


def load_schema(task: str) -> dict:
    """The JSON schema (as a dict) of ``task``'s config, or of a shared section."""
    text = resources.files("geosparse.schemas").joinpath(f"{task}.schema.yaml").read_text()
    return yaml.safe_load(text)


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


def validate(config: dict, task: str) -> dict:
    """Validate ``config`` against ``task``'s schema; raise ConfigError naming the key."""
    schema = load_schema(task)
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    return config


def resolve(path: str | Path, task: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load, override and validate a config file for ``task``."""
    config = apply_overrides(load_yaml(path), overrides or [])
    config.setdefault("task", task)
    if config["task"] != task:
        raise ConfigError(f"config key 'task': file is for {config['task']!r}, not {task!r}")
    return validate(config, task)
