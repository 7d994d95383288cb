"""One error path for the routes outside the AWS gateway: the container-facing sub-apps
(credentials, task metadata, the agent API, IMDS) and ecslocal's own ``/_ecslocal/v1`` API.

A handler that meets a storage fault (:class:`~ecslocal.storage.db.StorageError`: a full disk,
a read-only or corrupt ``state.db``) or fails in a way nobody foresaw must not hand aiohttp the
exception: aiohttp would answer its own ``500 Internal Server Error`` page (with the traceback
in it when the loop runs in debug mode) and log the traceback on ``aiohttp.server``. Instead the
endpoint answers in its own error shape — the agent's JSON for the credentials endpoint, a JSON
string for task metadata, plain text for IMDS, ``{"message"}`` for ecslocal's API:

* a storage fault: HTTP 500 with the fault's one line (storage/db.py has logged it already, at
  most once a minute while it lasts);
* any other exception: HTTP 500 with the endpoint's own words for an internal error, and the
  exception logged here, once, with its traceback (in the daemon's log, never in a body).

aiohttp's own answers (``HTTPException``: 404, 405, 413, ...) and cancellation pass through. A
streamed answer that has already sent its head cannot become an error: its connection is
closed, as a failed stream is ended everywhere else in the daemon.

The AWS API at ``/`` has the same rule in its gateway (api/gateway.py ``serve``), with each
protocol's error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ecslocal.storage.db import StorageError

log = logging.getLogger("ecslocal.http")

#: An endpoint's error answer: ``message`` is a storage fault's one line, None for an
#: unexpected exception (the endpoint says it in its own words).
Shape = Callable[[web.Request, "str | None"], web.StreamResponse]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def middleware(shape_for: Callable[[web.Request], Shape | None]) -> Middleware:
    """A middleware answering failures in ``shape_for(request)``'s shape; requests whose
    shape is None are left to whoever handles their errors (the gateway)."""

    @web.middleware
    async def failures(request: web.Request, handler: Handler) -> web.StreamResponse:
        shape = shape_for(request)
        if shape is None:
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except StorageError as error:
            return _answer(request, shape, error.message)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _answer(request, shape, None)

    return failures


def _answer(request: web.Request, shape: Shape, message: str | None) -> web.StreamResponse:
    if request.writer.output_size > 0:
        # The head (and maybe part of a stream) is sent: no error can be told any more. The
        # client sees the connection end; the response below is never written.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    return shape(request, message)
