"""Input validation against a botocore shape, reported the way AWS services report it.

AWS's request validation (the "Coral" framework behind most services) answers with
``1 validation error detected: Value '0' at 'durationSeconds' failed to satisfy constraint:
Member must have value greater than or equal to 900`` — every failed constraint of the model
(required, length, range, enum, pattern) listed, joined by ``; ``. Type mismatches are a
different class of error (``SerializationException`` in the JSON protocols), so they are
returned separately.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ecslocal.timefmt import parse_timestamp

if TYPE_CHECKING:
    from botocore.model import Shape

_NUMBER_TYPES = ("integer", "long", "float", "double")


@dataclass
class ValidationReport:
    constraint_errors: list[str] = field(default_factory=list)
    type_errors: list[str] = field(default_factory=list)

    def message(self) -> str:
        n = len(self.constraint_errors)
        noun = "error" if n == 1 else "errors"
        return f"{n} validation {noun} detected: " + "; ".join(self.constraint_errors)


def validate(value: Any, shape: Shape) -> ValidationReport:
    report = ValidationReport()
    _check(value, shape, "", report)
    return report


def _member_path(parent: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:200]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@lru_cache(maxsize=512)
def _pattern(regex: str) -> re.Pattern[str] | None:
    try:
        return re.compile(regex)
    except re.error:  # a Java-only construct: the pattern is not checked
        return None


def _fail(report: ValidationReport, value: Any, path: str, constraint: str) -> None:
    report.constraint_errors.append(
        f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: {constraint}"
        if value is not None
        else f"Value null at '{path}' failed to satisfy constraint: {constraint}"
    )


def _check(value: Any, shape: Shape, path: str, report: ValidationReport) -> None:
    kind = shape.type_name
    meta = shape.metadata
    where = path or "input"
    if kind == "structure":
        if not isinstance(value, dict):
            report.type_errors.append(f"Expected an object at '{where}'")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                _fail(report, None, _member_path(path, name), "Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                _check(value[name], member, _member_path(path, name), report)
        return
    if kind == "list":
        if not isinstance(value, list):
            report.type_errors.append(f"Expected a list at '{where}'")
            return
        _length(value, meta, path, report)
        for i, item in enumerate(value, 1):
            if item is None:
                _fail(report, None, f"{path}.{i}.member", "Member must not be null")
            else:
                _check(item, shape.member, f"{path}.{i}.member", report)
        return
    if kind == "map":
        if not isinstance(value, dict):
            report.type_errors.append(f"Expected an object at '{where}'")
            return
        _length(value, meta, path, report)
        for k, v in value.items():
            _check(k, shape.key, f"{path}.key", report)
            if v is not None:
                _check(v, shape.value, f"{path}.value", report)
        return
    if kind == "string":
        if not isinstance(value, str):
            report.type_errors.append(f"Expected a string at '{where}'")
            return
        _length(value, meta, path, report)
        enum = shape.enum
        if enum and value not in enum:
            _fail(report, value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        regex = meta.get("pattern")
        if regex:
            compiled = _pattern(regex)
            if compiled is not None and compiled.fullmatch(value) is None:
                _fail(
                    report, value, path, f"Member must satisfy regular expression pattern: {regex}"
                )
        return
    if kind in _NUMBER_TYPES:
        integral = kind in ("integer", "long")
        ok_types = (int,) if integral else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            report.type_errors.append(
                f"Expected {'an integer' if integral else 'a number'} at '{where}'"
            )
            return
        if "min" in meta and value < meta["min"]:
            _fail(
                report,
                value,
                path,
                f"Member must have value greater than or equal to {meta['min']}",
            )
        if "max" in meta and value > meta["max"]:
            _fail(
                report, value, path, f"Member must have value less than or equal to {meta['max']}"
            )
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            report.type_errors.append(f"Expected a boolean at '{where}'")
        return
    if kind == "timestamp":
        try:
            parse_timestamp(value)
        except ValueError:
            report.type_errors.append(f"Expected a timestamp at '{where}'")
        return
    if kind == "blob" and not isinstance(value, (str, bytes)):
        report.type_errors.append(f"Expected base64 data at '{where}'")


def _length(value: Any, meta: dict[str, Any], path: str, report: ValidationReport) -> None:
    n = len(value)
    if "min" in meta and n < meta["min"]:
        _fail(
            report, value, path, f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and n > meta["max"]:
        _fail(report, value, path, f"Member must have length less than or equal to {meta['max']}")
