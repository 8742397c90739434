"""Validate a report against its JSON Schema (``schemas/*.schema.json``), without dependencies.

Supports the JSON Schema keywords that schema uses: ``type`` (a name or a
list), ``properties``, ``required``, ``additionalProperties`` (bool or a
schema), ``items``, ``enum``, ``minimum``, ``maximum``, ``minItems`` and
local ``$ref`` (``#/$defs/...``).
"""

from __future__ import annotations

import json
from typing import Any

from portability.reports.check_report import SCHEMA_PATH

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def load_schema(name: str = "report") -> dict[str, Any]:
    """A schema shipped with the package: ``"report"`` (the check) or ``"faults"``."""
    path = SCHEMA_PATH.with_name(f"{name}.schema.json")
    return json.loads(path.read_text(encoding="utf-8"))


def validate(instance: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Every place where ``instance`` breaks the schema, as ``path: problem`` lines.

    Returns:
        An empty list when the instance is valid.
    """
    schema = schema or load_schema()
    errors: list[str] = []
    _check(instance, schema, schema, "$", errors)
    return errors


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str, errors: list[str]) -> None:
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path, errors)
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in names):
            errors.append(f"{path}: {value!r:.60} is not of type {' or '.join(names)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        _check_object(value, schema, root, path, errors)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: has {len(value)} items, fewer than {schema['minItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{i}]", errors)


def _check_object(value: dict, schema: dict[str, Any], root: dict[str, Any], path: str,
                  errors: list[str]) -> None:
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{path}: required property {key!r} is missing")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            _check(item, props[key], root, f"{path}.{key}", errors)
        elif extra is False:
            errors.append(f"{path}: unexpected property {key!r}")
        elif isinstance(extra, dict):
            _check(item, extra, root, f"{path}.{key}", errors)
