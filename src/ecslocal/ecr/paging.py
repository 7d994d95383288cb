"""Pages of ECR list results behind an opaque ``nextToken`` (DescribeRepositories,
ListImages, DescribeImages: "up to 100 results and a nextToken value" when maxResults is not
given; "This token should be treated as an opaque identifier")."""

from __future__ import annotations

import base64
import json
from typing import Any

from ecslocal.errors import AwsError

DEFAULT_PAGE = 100


def invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def _bad_token() -> AwsError:
    return invalid(
        "Invalid parameter at 'nextToken' failed to satisfy constraint: 'must be a"
        " token a previous call returned'"
    )


def encode_token(value: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": value}).encode()).decode()


def decode_token(token: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise _bad_token() from None
    offset = value.get("offset") if isinstance(value, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _bad_token()
    return offset


def page(
    items: list[Any], p: dict[str, Any], default: int = DEFAULT_PAGE
) -> tuple[list[Any], str | None]:
    start = decode_token(p["nextToken"]) if p.get("nextToken") else 0
    end = start + (p.get("maxResults") or default)
    return items[start:end], (encode_token(end) if end < len(items) else None)
