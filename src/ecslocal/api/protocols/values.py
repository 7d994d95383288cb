"""Scalar values on the wire: timestamps in the three formats botocore knows, blobs, booleans.

botocore's defaults (botocore/serialize.py, botocore/parsers.py): ``iso8601`` in query strings
and XML bodies, ``rfc822`` in headers, ``unixtimestamp`` in JSON bodies; a member's
``timestampFormat`` overrides them.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import Shape


def epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def format_timestamp(value: Any, fmt: str, millis: bool = False) -> str | float | int:
    seconds = epoch(value)
    if fmt == "unixtimestamp":
        return int(seconds) if seconds == int(seconds) else seconds
    if fmt == "rfc822":
        return formatdate(seconds, usegmt=True)
    moment = datetime.fromtimestamp(seconds, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(raw: str | float | int) -> float:
    """Epoch seconds from any of the formats (clients are not consistent about which)."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    return parsedate_to_datetime(text).timestamp()  # raises ValueError/TypeError if not


def to_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def b64(value: Any) -> str:
    return base64.b64encode(to_bytes(value)).decode()


def scalar_to_text(value: Any, shape: Shape, default_ts: str) -> str:
    """A scalar as text (query strings, headers, URI labels, XML text)."""
    kind = shape.type_name
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", default_ts)
        return str(format_timestamp(value, fmt))
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "blob":
        return b64(value)
    return str(value)


def scalar_from_text(raw: str, shape: Shape, where: str, bad_code: str) -> Any:
    """The value of a scalar member sent as text; ``bad_code`` names the protocol's error."""
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(raw)
        if kind in ("float", "double"):
            return float(raw)
        if kind == "boolean":
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        if kind == "timestamp":
            return parse_timestamp(raw)
        if kind == "blob":
            return base64.b64decode(raw, validate=True)
    except (ValueError, TypeError):
        raise AwsError(
            bad_code, f"Value '{raw}' for parameter {where} is invalid. It must be a valid {kind}."
        ) from None
    return raw
