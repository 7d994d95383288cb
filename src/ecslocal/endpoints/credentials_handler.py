"""``GET /v2/credentials/{id}``: the task-role credentials endpoint as a task's containers see it
(what ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` names), over the credentials manager
(:mod:`ecslocal.endpoints.credentials`).

Errors follow the agent (``ecs-agent/tmds/handlers/v1/credentials_handler.go``):
``{"code", "message"}`` with the ``CredentialsV2Request: `` prefix — 400 ``NoIdInRequest``,
400 ``InvalidIdInRequest``, 503 ``CredentialsUninitialized`` — and 429 over the task's budget
(:mod:`ecslocal.endpoints.app`).

FULL_URI mode: the per-task token must come along, and another task's token never fits. (The
agent has no token: its tasks reach it only from their own network namespace.) The token is
checked when the request's scope is resolved, before faults and the rate limit, so nobody else
can spend a task's budget.
"""

from __future__ import annotations

import hmac
import json

from aiohttp import web

from ecslocal.endpoints.app import Scope, scope_of
from ecslocal.endpoints.credentials import CredentialsManager, TaskCredentials

PREFIX = "CredentialsV2Request: "
MOUNT = "/v2/credentials"


class CredentialsEndpoint:
    def __init__(self, manager: CredentialsManager) -> None:
        self.manager = manager

    def routes(self) -> list[web.RouteDef]:
        """Relative to :data:`MOUNT`."""
        return [web.get("/{credentials_id:.*}", self.handle)]

    def resolve(self, request: web.Request) -> Scope[TaskCredentials] | web.Response:
        credentials_id = request.match_info["credentials_id"]
        if not credentials_id:
            return error(400, "NoIdInRequest", "No Credential ID in the request")
        entry = self.manager.get(credentials_id)
        if entry is None:
            return error(400, "InvalidIdInRequest", "Credentials not found")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), entry.auth_token.encode()):
            return error(
                401,
                "AccessDenied",
                "Authorization header missing or not this task's AWS_CONTAINER_AUTHORIZATION_TOKEN",
            )
        return Scope("credentials", entry.task_id, entry)

    async def handle(self, request: web.Request) -> web.Response:
        entry: TaskCredentials = scope_of(request).found
        try:
            self.manager.credentials(entry)
        except LookupError:
            return error(503, "CredentialsUninitialized", "Credentials uninitialized for ID")
        return web.Response(body=entry.body, content_type="application/json")


def error(status: int, code: str, message: str, prefix: str = PREFIX) -> web.Response:
    """The agent's ``ErrorMessage`` (``{"code", "message"}``); its 4xx/503 messages carry the
    ``CredentialsV2Request: `` prefix, its 500 does not (endpoints/failures.py)."""
    body = json.dumps({"code": code, "message": prefix + message}).encode()
    return web.Response(status=status, body=body, content_type="application/json")
