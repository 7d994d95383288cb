"""One HTTP endpoint for every AWS API ecslocal serves, and the HTTP hygiene around it.

The AWS services are served by the :class:`~ecslocal.api.gateway.Gateway` at ``/`` (and, once a
rest service is registered, at every path the other routes leave free); ``/_ecslocal/v1/...``
and the container-facing endpoints are routed by path. This module adapts aiohttp to the
gateway's plain requests and bounds how long a client may take to send one:

* **headers**: aiohttp's keep-alive timer runs from the moment a connection is accepted and
  again after each answer, and closes the connection if no complete request head has arrived
  when it fires (``RequestHandler._process_keepalive`` closes only an idle handler, one waiting
  for a message). Its ``keepalive_timeout`` is therefore the header timeout too: the daemon
  sets it to :attr:`Config.header_timeout` (60 s, nginx's ``client_header_timeout`` default;
  nginx's ``keepalive_timeout`` default is 75 s).
* **body**: a body read stops when the client sends nothing for :attr:`Config.body_timeout`
  (60 s: nginx's ``client_body_timeout``, which is also per read, not for the whole body), and
  the connection is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from ecslocal.api.gateway import BodyTimeout, Gateway, new_request_id, too_large
from ecslocal.api.protocols import HttpRequest
from ecslocal.api.service import Service
from ecslocal.auth.authenticator import Authenticator
from ecslocal.endpoints.faults import Faults
from ecslocal.failures import Middleware

__all__ = ["AwsRouter", "allowed_methods", "build_app", "new_request_id", "serve_aws_first"]

#: nginx's client_header_timeout / client_body_timeout default.
DEFAULT_READ_TIMEOUT = 60.0
#: What the routes outside the gateway may receive (aiohttp's ``client_max_size``).
CLIENT_MAX_SIZE = 16 * 1024 * 1024


async def read_body(request: web.Request, limit: int, idle_timeout: float) -> bytes:
    """The body, at most ``limit`` bytes (else a 413 :class:`AwsError`), failing with
    :class:`BodyTimeout` when the client sends nothing for ``idle_timeout`` seconds."""
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    content = request.content
    if content.is_eof():  # the whole body came with the headers (most API calls): in the buffer
        body = content.read_nowait(-1)
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await content.readany()
        except TimeoutError:
            raise BodyTimeout from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)


class AwsRouter:
    """aiohttp's side of the gateway: the request line and headers become an
    :class:`HttpRequest`, the body is read only when the gateway asks for it."""

    def __init__(
        self,
        services: Sequence[Service],
        authenticator: Authenticator,
        faults: Faults | None = None,
        body_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.gateway = Gateway(services, authenticator, faults)
        self.body_timeout = body_timeout

        self._serves_rest: bool | None = None

    @property
    def serves_rest(self) -> bool:
        """Whether a rest service is registered (known on the first request that needs it:
        the query services' models are not loaded at start-up for this)."""
        if self._serves_rest is None:
            self._serves_rest = any(s.protocol.startswith("rest-") for s in self.gateway.services)
        return self._serves_rest

    async def handle_path(self, request: web.Request) -> web.StreamResponse:
        """Any request no other route takes: a rest service's, if there is one (rest services
        route by method and path: the gateway decides, with the service's own errors).
        Without one, a path another route serves with other methods is a 405 with ``Allow``
        (RFC 9110 §15.5.6), as aiohttp answers it when no any-path route is registered, and
        any other path a 404."""
        if self.serves_rest:
            return await self.handle(request)
        allowed = await allowed_methods(request)
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        plain = HttpRequest(
            request.method,
            request.raw_path.split("?", 1)[0],
            request.query_string,
            request.headers,
            b"",
            (request.host or "").rsplit(":", 1)[0].lower(),
        )

        async def body(limit: int) -> bytes:
            return await read_body(request, limit, self.body_timeout)

        try:
            answer = await self.gateway.serve(plain, body, request.content_length)
        except BodyTimeout:
            _drop(request)
            return web.Response(status=408)  # never sent: the connection is gone
        if answer.abort:
            _drop(request)
        headers = answer.headers
        if request.method != "HEAD":
            # aiohttp sets the length of the body it sends; a HEAD answer keeps the length of
            # the body a GET would have sent (S3's HeadObject: a ContentLength header member).
            headers.pop("Content-Length", None)
        return web.Response(status=answer.status, body=answer.body, headers=headers)


async def allowed_methods(request: web.Request) -> set[str]:
    """The methods the app's other routes take at ``request``'s path: what an any-path route
    (this module's for rest services, the local API's fallback) says in a 405's ``Allow``.
    The any-path routes' own ``*`` is left out."""
    own = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is own:
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods - {"*"}
    return allowed


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def build_app(
    router: AwsRouter,
    extra_routes: list[web.RouteDef],
    mount: Callable[[web.Application], None] | None = None,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """The daemon's app: the AWS API at ``/``, ``extra_routes``, whatever ``mount`` adds (the
    container-facing sub-apps), and last the any-path route of the rest services, which would
    otherwise shadow everything registered after it. ``middlewares`` run for every request
    (the local API's error path: api/local_auth.py ``FAILURES``)."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=middlewares)
    routes: list[Any] = [web.post("/", router.handle), web.get("/", router.handle)]
    # ecslocal's own routes bound their bodies themselves, after the auth check (local_auth)
    app.add_routes([*routes, *extra_routes])
    if mount is not None:
        mount(app)
    # rest services route by path: every path the other routes leave free
    app.router.add_route("*", "/{path:.*}", router.handle_path)
    return app


def serve_aws_first(server: web.Server, router: AwsRouter) -> None:
    """Hand ``POST /`` (every AWS JSON and query call) to ``router`` before the application's
    URL dispatcher sees it; everything else goes the application's way.

    The application answers ``POST /`` with the same handler (:func:`build_app`), so only the
    cost changes: its dispatch (route lookup, match info, the per-request middleware chain
    aiohttp builds because the container-facing sub-apps have middlewares) was about a tenth
    of a DescribeTasks(1). A request that asks ``Expect: 100-continue`` keeps the
    application's path, which answers the expectation. Call before the server accepts a
    connection (each connection takes the server's handler when it opens)."""
    through_app = server.request_handler

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "POST" and request.raw_path == "/" and "Expect" not in request.headers:
            return await router.handle(request)  # type: ignore[arg-type]
        return await through_app(request)

    server.request_handler = handle
