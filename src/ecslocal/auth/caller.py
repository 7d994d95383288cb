"""The authenticated principal behind a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Who signed the request (or ``anonymous`` for operations AWS serves unsigned)."""

    access_key_id: str
    account_id: str
    arn: str
    user_id: str
    session_token: str | None = None
    anonymous: bool = False
