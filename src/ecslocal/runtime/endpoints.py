"""What the engine needs from the container-facing endpoints, as a small protocol.

A starting task is given its access to the task-role credentials endpoint, the task metadata
endpoint (v3, v4, the agent API) and STS: the variables its containers get. When the task has
ended, what it held is released. :class:`ecslocal.endpoints.tasks.TaskEndpoints` implements
this; the runtime imports nothing from ``ecslocal.endpoints`` (the daemon wires them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ecslocal.clock import Clock


@dataclass(frozen=True)
class TaskAccess:
    """Where one task's containers reach their endpoints."""

    #: Variables every container of the task gets (what a task definition sets itself wins):
    #: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` with a
    #: task role, ``AWS_ENDPOINT_URL_STS``.
    env: dict[str, str] = field(default_factory=dict)
    #: Base URL of the task's metadata endpoint: ``{metadata_url}/v4/{id}``, ``/v3/{id}`` and
    #: the agent API ``/api/{id}`` are under it.
    metadata_url: str = ""


class TaskEndpoints(Protocol):
    def open(
        self, task_arn: str, role_arn: str | None, ttl: float | None, clock: Clock | None
    ) -> TaskAccess:
        """A task is starting: its endpoints, and with ``role_arn`` its credentials (``ttl``
        seconds of the task's ``clock``, None for the defaults)."""
        ...

    def close(self, task_id: str) -> None:
        """The task has ended (or never started): release what :meth:`open` gave it. Safe to
        call for a task that was never opened."""
        ...
