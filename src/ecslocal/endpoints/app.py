"""The container-facing endpoints as aiohttp sub-apps behind one request pipeline.

The ECS agent serves every path of its task metadata server — credentials, metadata, stats, the
agent API — through one tollbooth limiter (``tollbooth.LimitHandler`` around the router in
``agent/handlers/task_server_setup.go``); ecslocal puts its faults at the same place. Each
sub-app (``/v2/credentials``, ``/v3``, ``/v4``, ``/api``, ``/latest``) says how a request finds
its task — its *scope*: the credentials id, the container's metadata endpoint id, or no task for
IMDS — and how it says that it failed inside (its error shape: endpoints/failures.py), and
the same middlewares run for all of them, in this order:

0. **failures**: a storage fault or an unexpected exception becomes the endpoint's own 500
   (:mod:`ecslocal.failures`), never aiohttp's page;
1. **scope**: the task the request is for; an id nobody knows is answered here with the
   endpoint's own error (400, 404; for credentials also the 401 of a token that is not the
   task's, so that nobody else can spend a task's budget or meet its faults);
2. **faults**: the fault covering (target, task), played on the request
   (:func:`ecslocal.endpoints.faults.apply`);
3. **rate limit**: one budget per task for all of its endpoints
   (:mod:`ecslocal.endpoints.ratelimit`); over it, tollbooth's 429.

The handlers then read what the scope found and answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from ecslocal import failures
from ecslocal.endpoints.faults import Faults, apply
from ecslocal.endpoints.ratelimit import TaskRateLimits, too_many_requests

T = TypeVar("T")


@dataclass(frozen=True)
class Scope(Generic[T]):
    """Who a request to a task endpoint is for."""

    #: The fault target that covers it: "credentials", "metadata" or "imds".
    target: str
    #: The task whose faults and budget apply; None for IMDS (it cannot tell who asks).
    task_id: str | None
    #: What the resolver found (the task's credentials entry, its task and container, ...).
    found: T


Resolver = Callable[[web.Request], "Scope[Any] | web.StreamResponse"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SCOPE = web.RequestKey("ecslocal.scope", Scope)
RESOLVE: web.AppKey[Resolver] = web.AppKey("ecslocal.resolve")
FAILURE: web.AppKey[failures.Shape] = web.AppKey("ecslocal.failure")


def scope_of(request: web.Request) -> Scope[Any]:
    return request[SCOPE]


_FAILURES = failures.middleware(lambda request: request.app[FAILURE])


class TaskEndpointApps:
    """Builds the sub-apps, each with the one pipeline of middlewares."""

    def __init__(self, faults: Faults, limits: TaskRateLimits) -> None:
        self.faults = faults
        self.limits = limits
        self.mounts: list[tuple[str, web.Application]] = []

    def mount(
        self,
        prefix: str,
        resolve: Resolver,
        routes: Sequence[web.RouteDef],
        failure: failures.Shape,
    ) -> None:
        pipeline = [_FAILURES, self._scope, self._fault, self._rate_limit]
        app = web.Application(middlewares=pipeline)
        app[RESOLVE] = resolve
        app[FAILURE] = failure
        app.add_routes(routes)
        self.mounts.append((prefix, app))

    def add_to(self, root: web.Application) -> None:
        for prefix, app in self.mounts:
            root.add_subapp(prefix, app)

    @web.middleware
    async def _scope(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:  # no route: aiohttp's 404/405
            return await handler(request)
        resolved = request.app[RESOLVE](request)
        if isinstance(resolved, web.StreamResponse):
            return resolved
        request[SCOPE] = resolved
        return await handler(request)

    @web.middleware
    async def _fault(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = request.get(SCOPE)
        if scope is not None:
            injected = await apply(self.faults.active(scope.target, scope.task_id), request)
            if injected is not None:
                return injected
        return await handler(request)

    @web.middleware
    async def _rate_limit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = request.get(SCOPE)
        if scope is not None and scope.task_id is not None and not self.limits.allow(scope.task_id):
            return too_many_requests()
        return await handler(request)
