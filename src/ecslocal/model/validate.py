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
from collections.abc import Callable
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
    _compiled(shape)(value, "", report)
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


#: Checks ``value`` at ``path`` (``""`` for the input itself), adding to the report.
Checker = Callable[[Any, str, ValidationReport], None]

#: Compiled checkers by shape identity (botocore caches shape objects per model; the shape is
#: kept alongside so its id is never reused), as :mod:`ecslocal.model.shapes` compiles its
#: serializers: the model's constraints are read once per shape, not once per request.
_CHECKERS: dict[int, tuple[Shape, Checker]] = {}


def _compiled(shape: Shape) -> Checker:
    cached = _CHECKERS.get(id(shape))
    if cached is not None:
        return cached[1]
    kind = shape.type_name
    if kind == "structure":
        checker = _structure(shape)
    elif kind == "list":
        checker = _list(shape)
    elif kind == "map":
        checker = _map(shape)
    elif kind == "string":
        checker = _string(shape)
    elif kind in _NUMBER_TYPES:
        checker = _number(shape)
    elif kind == "boolean":
        checker = _boolean
    elif kind == "timestamp":
        checker = _timestamp
    elif kind == "blob":
        checker = _blob
    else:
        checker = _anything
    _CHECKERS[id(shape)] = (shape, checker)
    return checker


def _structure(shape: Shape) -> Checker:
    required = tuple((name, _member_path("", name)) for name in shape.required_members)
    #: (member name, its path segment, its checker), in the model's order; filled after this
    #: checker is registered, so recursive shapes terminate.
    members: list[tuple[str, str, Checker]] = []

    def check(value: Any, path: str, report: ValidationReport) -> None:
        if not isinstance(value, dict):
            report.type_errors.append(f"Expected an object at '{path or 'input'}'")
            return
        for name, segment in required:
            if value.get(name) is None:
                _fail(
                    report,
                    None,
                    f"{path}.{segment}" if path else segment,
                    "Member must not be null",
                )
        for name, segment, member in members:
            v = value.get(name)
            if v is not None:
                member(v, f"{path}.{segment}" if path else segment, report)

    _CHECKERS[id(shape)] = (shape, check)
    members.extend(
        (name, _member_path("", name), _compiled(m)) for name, m in shape.members.items()
    )
    return check


def _list(shape: Shape) -> Checker:
    meta = shape.metadata
    bounded = "min" in meta or "max" in meta
    member_shape = shape.member

    def check(value: Any, path: str, report: ValidationReport) -> None:
        if not isinstance(value, list):
            report.type_errors.append(f"Expected a list at '{path or 'input'}'")
            return
        if bounded:
            _length(value, meta, path, report)
        item_check = _compiled(member_shape)
        for i, item in enumerate(value, 1):
            if item is None:
                _fail(report, None, f"{path}.{i}.member", "Member must not be null")
            else:
                item_check(item, f"{path}.{i}.member", report)

    return check


def _map(shape: Shape) -> Checker:
    meta = shape.metadata
    key_shape, value_shape = shape.key, shape.value

    def check(value: Any, path: str, report: ValidationReport) -> None:
        if not isinstance(value, dict):
            report.type_errors.append(f"Expected an object at '{path or 'input'}'")
            return
        _length(value, meta, path, report)
        key_check, value_check = _compiled(key_shape), _compiled(value_shape)
        for k, v in value.items():
            key_check(k, f"{path}.key", report)
            if v is None:  # maps are dense unless @sparse (see ecslocal.model.nulls)
                _fail(report, None, f"{path}.value", "Member must not be null")
            else:
                value_check(v, f"{path}.value", report)

    return check


def _string(shape: Shape) -> Checker:
    meta = shape.metadata
    bounded = "min" in meta or "max" in meta
    enum = shape.enum
    enum_set = frozenset(enum) if enum else None
    regex = meta.get("pattern")
    compiled = _pattern(regex) if regex else None

    def check(value: Any, path: str, report: ValidationReport) -> None:
        if not isinstance(value, str):
            report.type_errors.append(f"Expected a string at '{path or 'input'}'")
            return
        if bounded:
            _length(value, meta, path, report)
        if enum_set is not None and value not in enum_set:
            _fail(report, value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        if compiled is not None and compiled.fullmatch(value) is None:
            _fail(report, value, path, f"Member must satisfy regular expression pattern: {regex}")

    return check


def _number(shape: Shape) -> Checker:
    meta = shape.metadata
    integral = shape.type_name in ("integer", "long")
    ok_types = (int,) if integral else (int, float)
    expected = "an integer" if integral else "a number"

    def check(value: Any, path: str, report: ValidationReport) -> None:
        if isinstance(value, bool) or not isinstance(value, ok_types):
            report.type_errors.append(f"Expected {expected} at '{path or 'input'}'")
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

    return check


def _boolean(value: Any, path: str, report: ValidationReport) -> None:
    if not isinstance(value, bool):
        report.type_errors.append(f"Expected a boolean at '{path or 'input'}'")


def _timestamp(value: Any, path: str, report: ValidationReport) -> None:
    try:
        parse_timestamp(value)
    except ValueError:
        report.type_errors.append(f"Expected a timestamp at '{path or 'input'}'")


def _blob(value: Any, path: str, report: ValidationReport) -> None:
    if not isinstance(value, (str, bytes)):
        report.type_errors.append(f"Expected base64 data at '{path or 'input'}'")


def _anything(value: Any, path: str, report: ValidationReport) -> None:
    """Types the model has that are not checked (``document``)."""


def _length(value: Any, meta: dict[str, Any], path: str, report: ValidationReport) -> None:
    n = len(value)
    if "min" in meta and n < meta["min"]:
        _fail(
            report, value, path, f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and n > meta["max"]:
        _fail(report, value, path, f"Member must have length less than or equal to {meta['max']}")
