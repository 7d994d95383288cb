"""A task's endpoints, given when it starts and taken back when it ends (the engine's
:class:`ecslocal.runtime.endpoints.TaskEndpoints`).

Each task gets listeners of its own (:mod:`ecslocal.endpoints.listeners`) for its metadata
endpoint, STS and — with a task role — its credentials endpoint, so a ``refuse`` fault scoped
to the task refuses its connections and no other task's. Its containers learn them from their
environment, as on ECS:

* ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (+ ``AWS_CONTAINER_AUTHORIZATION_TOKEN``), read by
  every SDK's container credentials provider;
* ``ECS_CONTAINER_METADATA_URI_V4``, ``ECS_CONTAINER_METADATA_URI``, ``ECS_AGENT_URI`` (made
  per container by the engine from :attr:`TaskAccess.metadata_url`);
* ``AWS_ENDPOINT_URL_STS``: the service-specific endpoint variable, which the SDKs put before
  ``AWS_ENDPOINT_URL`` ("Service-specific endpoints", AWS SDKs and Tools Reference Guide:
  https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html; SDKs that predate
  it, like Debian 12's Go SDK v2 1.17, need the app to read it). A container whose definition
  sets ``AWS_ENDPOINT_URL`` itself is not given it: its own endpoint wins for STS too.

Every listener serves the daemon's whole app, and the daemon's main port keeps serving all of
these paths for host clients.
"""

from __future__ import annotations

from ecslocal.arns import task_id_of
from ecslocal.clock import Clock
from ecslocal.endpoints.credentials import CredentialsManager
from ecslocal.endpoints.listeners import Listeners
from ecslocal.endpoints.ratelimit import TaskRateLimits
from ecslocal.runtime.endpoints import TaskAccess


class TaskEndpoints:
    def __init__(
        self, credentials: CredentialsManager, limits: TaskRateLimits, listeners: Listeners
    ) -> None:
        self.credentials = credentials
        self.limits = limits
        self.listeners = listeners
        #: Task id -> its credentials id.
        self._credentials_ids: dict[str, str] = {}

    def open(
        self, task_arn: str, role_arn: str | None, ttl: float | None, clock: Clock | None
    ) -> TaskAccess:
        task_id = task_id_of(task_arn)
        targets = ["metadata", "sts", *(["credentials"] if role_arn else [])]
        listeners = self.listeners.open(task_id, targets)
        env = {"AWS_ENDPOINT_URL_STS": listeners["sts"].url}
        if role_arn:
            entry = self.credentials.register(task_arn, role_arn, ttl, clock)
            self._credentials_ids[task_id] = entry.credentials_id
            env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = (
                f"{listeners['credentials'].url}/v2/credentials/{entry.credentials_id}"
            )
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = entry.auth_token
        return TaskAccess(env=env, metadata_url=listeners["metadata"].url)

    def close(self, task_id: str) -> None:
        credentials_id = self._credentials_ids.pop(task_id, None)
        if credentials_id is not None:
            self.credentials.forget(credentials_id)
        self.limits.forget(task_id)
        self.listeners.close(task_id)

    def close_all(self) -> None:
        self.listeners.close_all()
