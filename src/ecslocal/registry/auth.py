"""Who a registry request is from: ECR's HTTP Basic scheme over the ECR API's tokens.

ECR has no token server: the client sends ``Authorization: Basic base64("AWS:<password>")``,
the very ``authorizationToken`` GetAuthorizationToken returned (notes §1.8). Without one the
answer is ECR's challenge, captured from the live service (notes §1.8, NVIDIA/enroot#59):

    401 Unauthorized
    Docker-Distribution-Api-Version: registry/2.0
    Www-Authenticate: Basic realm="https://<host>/",service="ecr.amazonaws.com"
    Content-Type: text/plain; charset=utf-8

    Not Authorized

A password that is no live token of any account is ECR's 403 ``DENIED`` "Your authorization
token has expired. Reauthenticate and try again." (the line docker prints, quoted in
aws/aws-cli#6580 and many CI logs): only the SHA-256 of live passwords is kept, so a wrong
password and an expired one look alike here, as they do to a client. A Host of the form
``<acct>.dkr.ecr.<region>.amazonaws.com`` (mapped to loopback in /etc/hosts) must name the
token's account and region: another account's or region's registry is a 403 ``DENIED``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from ecslocal.ecr.names import ECR_HOST_RE
from ecslocal.registry.errors import API_VERSION, RegistryError

USER = "AWS"
EXPIRED = "Your authorization token has expired. Reauthenticate and try again."


class TokenVerifier(Protocol):
    """:class:`ecslocal.ecr.tokens.AuthTokens`' side the registry uses."""

    def verify(self, password: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class Caller:
    account: str
    region: str


class Unauthorized(Exception):
    """No credentials (or not ECR's kind): answered with the challenge."""


def challenge(request: web.Request) -> web.Response:
    host = request.host or "localhost"
    return web.Response(
        status=401,
        text="Not Authorized\n",
        content_type="text/plain",
        charset="utf-8",
        headers={
            **API_VERSION,
            "Www-Authenticate": f'Basic realm="https://{host}/",service="ecr.amazonaws.com"',
        },
    )


def _password(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or user != USER or not password:
        return None
    return password


def authenticate(request: web.Request, tokens: TokenVerifier) -> Caller:
    """The caller of ``request``; :class:`Unauthorized` or a 403 :class:`RegistryError`."""
    header = request.headers.get("Authorization")
    if header is None:
        raise Unauthorized()
    password = _password(header)
    if password is None:
        raise Unauthorized()
    found = tokens.verify(password)
    if found is None:
        raise RegistryError("DENIED", EXPIRED)
    caller = Caller(*found)
    host = ECR_HOST_RE.match((request.host or "").lower())
    if host is not None and (host.group("account"), host.group("region")) != (
        caller.account,
        caller.region,
    ):
        # A token is one region's (GetAuthorizationToken's proxyEndpoint names that region's
        # registry, and the token verifies to its account and region): another region's
        # registry host is another registry. The spec's default words: no ECR capture known.
        raise RegistryError("DENIED")
    return caller
