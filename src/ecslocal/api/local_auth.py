"""Who may call ecslocal's own API (``/_ecslocal/v1/...``): the account's owner, no one else.

Faults, OIDC token minting, task logs and key expiry act on every task, so a request must be
SigV4-signed (service ``ecslocal``, the daemon's region) with a *long-term* access key of the
account (``test``/``test`` unless ``serve --no-default-key``, and ``--access-key`` keys).
Session credentials — a task role's, any STS session's — are refused: a container holds its
task role's credentials, and it must not inject faults into another task or read its logs.
The signature is checked by the same code as every AWS request (auth/sigv4.py,
auth/authenticator.py).

Open without a signature: the health route (``ecslocal``'s "is a daemon up?" probe) and the
OIDC issuer's discovery document and JWKS, which hold only public keys and which OpenID Connect
Discovery 1.0 §4 has relying parties fetch without credentials.

One error shape for the whole local API: ``{"message": "..."}`` with the HTTP status — 401 when
the request is not signed or its signature does not check (with ``WWW-Authenticate``,
RFC 9110 §11.6.1), 403 when it is signed with session credentials, 400 for a bad parameter,
404 for an unknown task or route, 405 for a method a route does not take, 500 for a storage
fault (its one line) or an unexpected failure (:data:`FAILURES`, logged once by
:mod:`ecslocal.failures`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import attr
from aiohttp import web

from ecslocal import failures
from ecslocal.api.server import allowed_methods
from ecslocal.auth import sigv4
from ecslocal.auth.authenticator import INVALID_TOKEN, Authenticator

PREFIX = "/_ecslocal/v1"
#: The SigV4 service name of the local API (its credential scope's service).
SIGNING_NAME = "ecslocal"
#: The largest body a local API call may send (fault specs, token requests: a few hundred
#: bytes); a larger one is refused from its Content-Length, before anything is read.
MAX_BODY = 1024 * 1024
#: Served to anyone: see the module docstring.
OPEN_PATHS = frozenset(
    {
        f"{PREFIX}/health",
        f"{PREFIX}/oidc/.well-known/openid-configuration",
        f"{PREFIX}/oidc/jwks",
    }
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **headers: str) -> web.Response:
    """The local API's one error shape."""
    return web.json_response({"message": message}, status=status, headers=headers or None)


def failure(request: web.Request, message: str | None) -> web.StreamResponse:
    """A local route failed inside: the storage fault's line, or that the log says why."""
    return error(500, message or "An internal error occurred; the daemon's log says what.")


#: The app-wide middleware that gives every /_ecslocal/v1 route :func:`failure`'s answers
#: (the other paths have error paths of their own: the gateway, the endpoint sub-apps).
FAILURES = failures.middleware(
    lambda request: failure if request.path.startswith(PREFIX + "/") else None
)


class LocalAuth:
    def __init__(self, authenticator: Authenticator, body_timeout: float = 60.0) -> None:
        self.authenticator = authenticator
        #: Seconds the whole body may take once the headers passed (config.body_timeout).
        self.body_timeout = body_timeout

    def _unauthorized(self, message: str) -> web.Response:
        region = self.authenticator.region
        return error(
            401,
            f"{message} The ecslocal API (/_ecslocal/v1) takes requests signed with SigV4"
            f" (service '{SIGNING_NAME}', region '{region}') with a long-term access key of"
            " the account.",
            **{"WWW-Authenticate": f'{sigv4.ALGORITHM} realm="{SIGNING_NAME}"'},
        )

    async def refusal(self, request: web.Request) -> web.Response | None:
        """None when ``request`` may go on; otherwise the response refusing it."""
        if request.path in OPEN_PATHS:
            return None
        query = dict(sigv4.parse_query_string(request.query_string))
        credential = sigv4.credential_parts(request.headers, query)
        if credential is None:
            return self._unauthorized("Missing Authentication Token.")
        # Unknown keys are refused before the body is read.
        if self.authenticator.keys.get(credential[0]) is None:
            return self._unauthorized(INVALID_TOKEN)
        if (request.content_length or 0) > MAX_BODY:
            return error(413, f"The request body is larger than {MAX_BODY} bytes.")
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()  # a body that never finishes: the connection goes
            return error(408, "The request body was not received in time.")
        try:
            signed = sigv4.parse(
                request.method,
                request.raw_path.split("?", 1)[0],
                request.query_string,
                request.headers,
                body,
            )
            caller = self.authenticator.authenticate(signed, SIGNING_NAME)
        except sigv4.SigV4Error as failure:
            return self._unauthorized(failure.message or "Missing Authentication Token.")
        if caller.session_token is not None:
            return error(
                403,
                f"Access key {caller.access_key_id} is a session credential ({caller.arn}):"
                " the ecslocal API (/_ecslocal/v1) takes long-term access keys of the account"
                " only, never a task role's or an STS session's credentials.",
            )
        return None

    def guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            refused = await self.refusal(request)
            return refused if refused is not None else await handler(request)

        guarded.__name__ = getattr(handler, "__name__", "guarded")
        return guarded

    def protect(self, routes: Iterable[web.RouteDef]) -> list[web.RouteDef]:
        """``routes`` with every handler behind :meth:`refusal`."""
        return [attr.evolve(route, handler=self.guard(route.handler)) for route in routes]

    def fallback(self) -> web.RouteDef:
        """404/405 in the local API's shape for any other ``/_ecslocal/v1`` path (after the
        signature check, so the routes are not listed to strangers). Register it last."""

        async def unknown(request: web.Request) -> web.Response:
            allowed = await allowed_methods(request)
            if allowed:
                return error(
                    405,
                    f"{request.method} is not allowed on {request.path}",
                    Allow=", ".join(sorted(allowed)),
                )
            return error(404, f"No such route: {request.method} {request.path}")

        return web.route("*", PREFIX + "/{tail:.*}", self.guard(unknown))
