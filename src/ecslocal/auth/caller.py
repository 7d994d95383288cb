"""The authenticated principal behind a request."""

from __future__ import annotations

from dataclasses import dataclass

from ecslocal.clock import Clock


@dataclass(frozen=True)
class Caller:
    """Who signed the request (or ``anonymous`` for operations AWS serves unsigned)."""

    access_key_id: str
    account_id: str
    arn: str
    user_id: str
    session_token: str | None = None
    anonymous: bool = False
    #: The clock the request was signed on, when it is a time-warped task's (responses then
    #: carry that clock's ``Date``, which SDKs correct their clock skew by).
    clock: Clock | None = None
