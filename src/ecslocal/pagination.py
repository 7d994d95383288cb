"""``nextToken``: the opaque continuation token of AWS List operations, in one codec.

A token is what botocore's paginator makes of a resume point: a JSON object, base64-encoded
(:class:`botocore.paginate.TokenEncoder` / :class:`~botocore.paginate.TokenDecoder`). Clients
treat it as opaque and send it back unchanged; a token that does not decode to the object a
service wrote is the caller's error, never a traceback.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import Any, TypeVar

from botocore.paginate import TokenDecoder, TokenEncoder

from ecslocal.errors import AwsError, invalid_parameter

T = TypeVar("T")

_ENCODER = TokenEncoder()
_DECODER = TokenDecoder()


def encode_token(state: dict[str, Any]) -> str:
    """An opaque token for ``state`` (JSON-serializable)."""
    return str(_ENCODER.encode(state))


def decode_token(token: str) -> dict[str, Any] | None:
    """The state a token of :func:`encode_token` holds; None for anything else."""
    try:
        state = _DECODER.decode(token)
    except (ValueError, TypeError, binascii.Error, UnicodeError, AttributeError):
        return None
    return state if isinstance(state, dict) else None


def offset_page(
    items: Sequence[T],
    token: str | None,
    limit: int,
    bad_token: AwsError | None = None,
) -> tuple[list[T], str | None]:
    """One page of ``items`` from the offset ``token`` holds: (the page, the next token or
    None after the last page). A token this codec did not write raises ``bad_token``."""
    start = 0
    if token:
        state = decode_token(token)
        offset = state.get("offset") if state else None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise bad_token or invalid_parameter("Invalid nextToken.")
        start = offset
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    return page, encode_token({"offset": start + limit}) if more else None
