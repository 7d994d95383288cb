"""Task-role credentials as a task's containers see them: the ECS agent's
``GET /v2/credentials/{id}`` endpoint, with rotation like Fargate's.

Each task with a ``taskRoleArn`` gets a credentials id (in the URI its containers are given) and
an authorization token. The credentials served are real session credentials issued by the STS
layer (:meth:`RoleStore.assume`, session name = the task id, as ECS names task-role sessions),
so every ecslocal API accepts them until their ``Expiration`` and refuses them after it.

Rotation: a credential lifetime per task (default 6 h); from ``lead`` seconds before expiry
(default 30 min, never more than half the lifetime) a request gets fresh credentials — a new key
id and token — while the old ones stay valid until their own ``Expiration``.

A time-warped task (:mod:`ecslocal.runtime.timewarp`) has a clock of its own: lifetimes,
rotation and the ``Expiration`` it is told run on that clock, and the key store learns the
clock so its signatures are checked against the time its processes see.

Response and errors follow the agent (``ecs-agent/tmds/handlers/v1/credentials_handler.go``):
``{RoleArn, AccessKeyId, SecretAccessKey, Token, Expiration}`` with ``Expiration`` as
``YYYY-MM-DDTHH:MM:SSZ`` (the JS SDK rejects ``+00:00``); errors ``{"code", "message"}`` —
400 ``NoIdInRequest``, 400 ``InvalidIdInRequest``, 503 ``CredentialsUninitialized``, and 429 over
the task's budget (:mod:`ecslocal.endpoints.ratelimit`).
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from ecslocal.auth.keys import AccessKey
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.endpoints.faults import Faults, apply
from ecslocal.endpoints.ratelimit import TaskRateLimits, too_many_requests
from ecslocal.storage.db import Database, Schema

DEFAULT_TTL = 6 * 3600.0
DEFAULT_LEAD = 30 * 60.0
PREFIX = "CredentialsV2Request: "

#: Credentials ids and tokens live in memory only: a restarted daemon has stopped every task
#: (runtime/agent.py ``recover``), so nothing could ever read them back. Version 1 of the
#: table was written and never read; version 2 drops it.
SCHEMA = Schema(
    "task_credentials",
    [
        """
CREATE TABLE IF NOT EXISTS task_credentials (
    credentials_id TEXT PRIMARY KEY,
    task_arn TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    auth_token TEXT NOT NULL,
    ttl REAL NOT NULL,
    access_key_id TEXT
)
""",
        "DROP TABLE IF EXISTS task_credentials",
    ],
)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TaskCredentials:
    credentials_id: str
    task_arn: str
    role_arn: str
    auth_token: str
    ttl: float
    #: The task's clock: the daemon's, or the task's warped one.
    clock: Clock
    current: AccessKey | None = None
    #: ``current``'s Expiration on the task's clock.
    expiration: float = 0.0
    #: The JSON served for ``current`` (made once per rotation).
    body: bytes = b""
    #: Keys issued to this task, known to the key store as its keys while the task runs.
    issued: list[str] = field(default_factory=list)

    @property
    def lead(self) -> float:
        return min(DEFAULT_LEAD, self.ttl / 2)


class CredentialsManager:
    """Issues, rotates and serves task-role credentials (the agent's credentials manager)."""

    def __init__(
        self,
        db: Database,
        roles: RoleStore,
        clock: Clock,
        default_ttl: float = DEFAULT_TTL,
        limits: TaskRateLimits | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.faults = faults
        self.roles = roles
        self.clock = clock
        self.default_ttl = default_ttl
        self.limits = limits
        db.register(SCHEMA)
        self._by_id: dict[str, TaskCredentials] = {}

    # -- tasks ------------------------------------------------------------------------------
    def register(
        self, task_arn: str, role_arn: str, ttl: float | None = None, clock: Clock | None = None
    ) -> TaskCredentials:
        """A credentials id and token for a task that is starting; its first credentials are
        issued now, so a container never meets ``CredentialsUninitialized``. ``ttl`` is in
        seconds of the task's ``clock`` (default: the daemon's)."""
        entry = TaskCredentials(
            credentials_id=str(uuid.uuid4()),
            task_arn=task_arn,
            role_arn=role_arn,
            auth_token=secrets.token_urlsafe(32),
            ttl=ttl or self.default_ttl,
            clock=clock or self.clock,
        )
        self._by_id[entry.credentials_id] = entry
        self.credentials(entry)
        return entry

    def forget(self, credentials_id: str) -> None:
        """The task stopped: its endpoint answers InvalidIdInRequest from now on (issued keys
        keep their own expiry)."""
        entry = self._by_id.pop(credentials_id, None)
        if entry is not None:
            for key_id in entry.issued:
                self.roles.keys.tasks.pop(key_id, None)
                self.roles.keys.clocks.pop(key_id, None)

    def credentials(self, entry: TaskCredentials) -> AccessKey:
        """The task's current credentials, rotated once inside the lead time before expiry."""
        now = entry.clock.time()
        key = entry.current
        if key is None or now >= entry.expiration - entry.lead:
            role = self.roles.by_arn(entry.role_arn)
            if role is None:
                raise LookupError(entry.role_arn)
            session_name = entry.task_arn.rsplit("/", 1)[-1]
            # The key store keeps expiry on the daemon's clock: the lifetime, converted.
            lifetime = entry.ttl * self.clock.speed / entry.clock.speed
            key = self.roles.assume(role, session_name, self.clock.time(), lifetime).key
            entry.current, entry.expiration = key, now + entry.ttl
            entry.issued.append(key.access_key_id)
            self.roles.keys.tasks[key.access_key_id] = session_name
            if entry.clock is not self.clock:
                self.roles.keys.clocks[key.access_key_id] = entry.clock
            entry.body = json.dumps(
                {
                    "RoleArn": entry.role_arn,
                    "AccessKeyId": key.access_key_id,
                    "SecretAccessKey": key.secret_access_key,
                    "Token": key.session_token,
                    "Expiration": rfc3339(entry.expiration),
                }
            ).encode()
        return key

    def expire_now(self, task_id: str) -> bool:
        """The task's current credentials expire now (every API refuses them); the endpoint
        vends fresh ones on the next request. False if the task has no credentials here."""
        for entry in self._by_id.values():
            if entry.task_arn.rsplit("/", 1)[-1] == task_id and entry.current is not None:
                self.roles.keys.expire(entry.current.access_key_id, self.clock.time())
                entry.current = None
                return True
        return False

    # -- HTTP -------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/credentials/{credentials_id:.*}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        credentials_id = request.match_info["credentials_id"]
        if not credentials_id:
            return _error(400, "NoIdInRequest", "No Credential ID in the request")
        entry = self._by_id.get(credentials_id)
        if entry is None:
            return _error(400, "InvalidIdInRequest", "Credentials not found")
        if self.faults is not None:
            task_id = entry.task_arn.rsplit("/", 1)[-1]
            injected = await apply(self.faults.active("credentials", task_id), request)
            if injected is not None:
                return injected
        # FULL_URI mode: the per-task token must come along; another task's token never fits.
        # (The agent has no token: its tasks reach it only from their own network namespace.
        # The check comes before the rate limit, so nobody else can spend a task's budget.)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), entry.auth_token.encode()):
            return _error(
                401,
                "AccessDenied",
                "Authorization header missing or not this task's AWS_CONTAINER_AUTHORIZATION_TOKEN",
            )
        if self.limits is not None and not self.limits.allow(entry.task_arn.rsplit("/", 1)[-1]):
            return too_many_requests()
        try:
            self.credentials(entry)
        except LookupError:
            return _error(503, "CredentialsUninitialized", "Credentials uninitialized for ID")
        return web.Response(body=entry.body, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    body = json.dumps({"code": code, "message": PREFIX + message}).encode()
    return web.Response(status=status, body=body, content_type="application/json")
