"""Task-role credentials: the agent's credentials manager (``ecs-agent/agent/credentials``
``Manager``: set, get, remove by credentials id), with rotation like Fargate's. Its HTTP
endpoint, ``GET /v2/credentials/{id}``, is :mod:`ecslocal.endpoints.credentials_handler`.

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

The document served is ``{RoleArn, AccessKeyId, SecretAccessKey, Token, Expiration}``
(``ecs-agent/tmds/handlers/v1/credentials_handler.go``) with ``Expiration`` as
``YYYY-MM-DDTHH:MM:SSZ`` (the JS SDK rejects ``+00:00``).
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field

from ecslocal.arns import task_id_of
from ecslocal.auth.keys import AccessKey
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.storage.db import Database, Schema
from ecslocal.timefmt import iso8601

DEFAULT_TTL = 6 * 3600.0
DEFAULT_LEAD = 30 * 60.0

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
    def task_id(self) -> str:
        return task_id_of(self.task_arn)

    @property
    def lead(self) -> float:
        return min(DEFAULT_LEAD, self.ttl / 2)


class CredentialsManager:
    """Issues and rotates task-role credentials (the agent's credentials manager)."""

    def __init__(
        self,
        db: Database,
        roles: RoleStore,
        clock: Clock,
        default_ttl: float = DEFAULT_TTL,
    ) -> None:
        self.roles = roles
        self.clock = clock
        self.default_ttl = default_ttl
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
        try:
            self.credentials(entry)
        except BaseException:  # no role to assume: nothing of the entry stays behind
            self.forget(entry.credentials_id)
            raise
        return entry

    def get(self, credentials_id: str) -> TaskCredentials | None:
        return self._by_id.get(credentials_id)

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
            session_name = entry.task_id
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
                    "Expiration": iso8601(entry.expiration),
                }
            ).encode()
        return key

    def expire_now(self, task_id: str) -> bool:
        """The task's current credentials expire now (every API refuses them); the endpoint
        vends fresh ones on the next request. False if the task has no credentials here."""
        for entry in self._by_id.values():
            if entry.task_id == task_id and entry.current is not None:
                self.roles.keys.expire(entry.current.access_key_id, self.clock.time())
                entry.current = None
                return True
        return False
