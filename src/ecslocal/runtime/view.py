"""What the container-facing endpoints may see of the engine, and the one thing they may ask.

The task metadata endpoint (``endpoints/metadata.py``) is given a :class:`TaskView` (the Agent
implements it), in the shape of the ECS agent's handlers, which get a ``TaskEngineState``
interface rather than the engine and look tasks up with named queries
(``TaskARNByV3EndpointID``, amazon-ecs-agent ``agent/engine/dockerstate``). Everything it
returns is frozen (:class:`TaskSnapshot`, the states of :mod:`ecslocal.runtime.model`, the task
definition through ``MappingProxyType``): an endpoint cannot change what the engine knows.
Task scale-in protection, which the agent API sets, is an engine command
(:meth:`TaskView.set_protection`), not a field an endpoint writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ecslocal.clock import Clock
from ecslocal.runtime.events import EventBus
from ecslocal.runtime.health import HealthReport
from ecslocal.runtime.model import ContainerState, TaskState


@dataclass(frozen=True, slots=True)
class ContainerSnapshot:
    state: ContainerState
    #: The container definition (RunTask's memory/cpu overrides applied), read-only.
    definition: Mapping[str, Any]
    #: The last health check's result (None without a running health check).
    health: HealthReport | None


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    state: TaskState
    #: The task definition, read-only.
    definition: Mapping[str, Any]
    containers: tuple[ContainerSnapshot, ...]
    #: The clock the task's processes read (a warped task's own: ecslocal:time-warp).
    clock: Clock

    @property
    def task_id(self) -> str:
        return self.state.task_id

    def container(self, name: str) -> ContainerSnapshot:
        return next(c for c in self.containers if c.state.name == name)


class TaskView(Protocol):
    #: The engine's events (a reader keeps per-task state of its own and forgets it when the
    #: task stops).
    events: EventBus

    def by_endpoint_id(self, endpoint_id: str) -> tuple[str, str] | None:
        """(task id, container name) of a running task's metadata endpoint id."""
        ...

    def snapshot(self, task_id: str) -> TaskSnapshot | None:
        """A running task as it is now."""
        ...

    def container_usage(self, task_id: str, name: str) -> dict[str, Any] | None:
        """The container's resource usage (``cpu_seconds``, ``memory_bytes``, ``pids``) while
        it runs; None otherwise."""
        ...

    def set_protection(self, task_id: str, until: float | None) -> TaskState | None:
        """Protect the running task from scale-in until ``until`` (its own clock), or end the
        protection (None); the task's new state, None if it is not running."""
        ...
