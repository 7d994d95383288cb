"""AWS timestamp formats, in one place.

botocore's protocols fix how a timestamp travels (``botocore/serialize.py``, the
``timestampFormat`` trait): the JSON protocols (ECS, Logs) send epoch seconds as a number
(``unixTimestamp``), the query and XML protocols (STS, IAM) ISO 8601 (``iso8601``). The
container endpoints (task role credentials, IMDS) write ``Expiration`` as ISO 8601 to the
second with ``Z``, as the agent and IMDS do; task metadata v4 stamps with fractional seconds,
ecslocal's engine events with milliseconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def iso8601(epoch: float, fraction: bool = False) -> str:
    """``2026-12-01T10:11:12Z`` (or ``2026-12-01T10:11:12.123456Z`` with ``fraction``)."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fraction else "%Y-%m-%dT%H:%M:%SZ")


def iso8601_ms(epoch: float) -> str:
    """``2026-12-01T10:11:12.123Z``: milliseconds (truncated), as ECS's events stamp them."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_timestamp(value: object) -> float:
    """Epoch seconds of a timestamp as a request may carry it: epoch seconds (number or
    numeric string), ISO 8601 (``Z`` or an offset; naive means UTC), or a datetime. ValueError
    for anything else."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"not a timestamp: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise ValueError(f"not a timestamp: {value!r}")
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
