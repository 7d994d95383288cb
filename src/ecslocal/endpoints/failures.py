"""How each container-facing endpoint says that it failed inside (HTTP 500), in the words the
ECS agent and IMDS use; the middleware that calls these is :mod:`ecslocal.failures`.

Each takes the request and the storage fault's one line, or None for an unexpected exception.
"""

from __future__ import annotations

from aiohttp import web

from ecslocal.endpoints.credentials_handler import error as credentials_error


def credentials(request: web.Request, message: str | None) -> web.StreamResponse:
    """``{"code": "InternalServerError", "message": "Internal server error"}``: the agent's
    ``ErrInternalServer`` (``ecs-agent/tmds/handlers/v1/credentials_handler.go``), whose
    message has no ``CredentialsV2Request:`` prefix."""
    return credentials_error(
        500, "InternalServerError", message or "Internal server error", prefix=""
    )


#: The agent's words for an unknown failure, per v3/v4 handler (route names of
#: endpoints/metadata.py): ``ecs-agent/tmds/handlers/v4/handlers.go``.
_METADATA_WORDS = {
    "container": "failed to get container metadata",
    "task": "failed to get task metadata",
    "taskWithTags": "failed to get task metadata",
    "stats": "failed to get stats",
    "task-stats": "failed to get stats",
}


def metadata(request: web.Request, message: str | None) -> web.StreamResponse:
    """A JSON string with status 500, as the agent's v3/v4 handlers write every error
    (``utils.WriteJSONResponse(w, 500, "failed to get task metadata", ...)``)."""
    if message is None:
        name = request.match_info.route.name or "task"
        message = _METADATA_WORDS.get(name, "failed to get task metadata")
    return web.json_response(message, status=500)


def task_protection(request: web.Request, message: str | None) -> web.StreamResponse:
    """``{"error": {"Code": "ServerException", "Message": ...}}``: the agent's task protection
    handlers (``ecs-agent/tmds/handlers/taskprotection/v1/handlers/handlers.go``,
    ``apierrors.ErrCodeServerException``, "Unexpected error occurred"; ``Arn`` and
    ``requestID`` are omitempty and left out, as the agent leaves them when it has none)."""
    body = {"error": {"Code": "ServerException", "Message": message or "Unexpected error occurred"}}
    return web.json_response(body, status=500)


def imds(request: web.Request, message: str | None) -> web.StreamResponse:
    """Plain text, as IMDS answers every path."""
    return web.Response(
        status=500, text=message or "Internal Server Error", content_type="text/plain"
    )
