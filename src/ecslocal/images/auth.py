"""Registry authentication as docker and containers/image do it: a 401's ``WWW-Authenticate``
challenge says how. ``Basic realm=…`` (ECR, htpasswd registries): send the credentials on every
request. ``Bearer realm=…,service=…,scope=…`` (Docker Hub, public ECR, token-auth registries):
GET the realm with ``service`` and ``scope`` (Basic credentials if any, else anonymously), take
``token`` (or ``access_token``) and send it as ``Authorization: Bearer``; one token per scope.

Sources: distribution docs/spec/auth/token.md ("How to authenticate", the token response's
``token``/``access_token``/``expires_in``), RFC 7235 (challenge syntax).
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field

import httpx

#: RFC 7235 auth-param: key=token or key="quoted string".
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


class AuthError(Exception):
    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a WWW-Authenticate value (registries send one)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {}
    for match in _PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
    return Challenge(scheme.lower(), params)


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class Authenticator:
    """Holds the credentials and what the registry asked for; gives each request's
    Authorization header."""

    username: str | None = None
    password: str | None = None
    challenge: Challenge | None = None
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # scope -> (token, until)

    def header(self, scope: str) -> str | None:
        if self.challenge is None:
            return None
        if self.challenge.scheme == "basic":
            if self.username is None:
                raise AuthError("the registry wants a username and password (Basic auth)")
            return basic_header(self.username, self.password or "")
        token = self.tokens.get(scope)
        if token and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        return None

    def answer(self, response: httpx.Response, scope: str, http: httpx.Client) -> bool:
        """After a 401: learn the challenge (and fetch a token); whether a retry can succeed."""
        header = response.headers.get("www-authenticate", "")
        challenge = parse_challenge(header)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise AuthError(f"unauthorized, and no usable challenge ({header!r})")
        first = self.challenge is None or self.challenge != challenge
        self.challenge = challenge
        if challenge.scheme == "basic":
            if self.username is None:
                raise AuthError("the registry wants a username and password (Basic auth)")
            return first  # credentials already sent and refused: don't loop
        if scope in self.tokens and not first:
            del self.tokens[scope]
            return False
        self.tokens[scope] = self._fetch_token(challenge, scope, http)
        return True

    def _fetch_token(
        self, challenge: Challenge, scope: str, http: httpx.Client
    ) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError("the Bearer challenge names no realm")
        query: list[tuple[str, str]] = []
        if "service" in challenge.params:
            query.append(("service", challenge.params["service"]))
        # One scope parameter per scope (token.md: "scope … may be given multiple times").
        for one in (scope or challenge.params.get("scope", "")).split():
            query.append(("scope", one))
        headers = {}
        if self.username is not None:
            headers["Authorization"] = basic_header(self.username, self.password or "")
        response = http.get(realm, params=query, headers=headers)
        if response.status_code != 200:
            raise AuthError(
                f"the token server {realm} answered {response.status_code}", response.status_code
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            # token.md: "expires_in … defaults to 60 seconds"; renew 10 s early.
            lifetime = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token:
            raise AuthError(f"the token server {realm} returned no token")
        return str(token), time.monotonic() + max(lifetime - 10, 1)
