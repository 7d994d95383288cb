"""What the container-facing endpoints may see of the engine, and the one thing they may ask.

The task metadata endpoint (``endpoints/metadata.py``) is given a :class:`TaskView` (an
:class:`EngineView` of the Agent, ``Agent.view()``), in the shape of the ECS agent's
handlers, which get a ``TaskEngineState`` interface rather than the engine and look tasks up
with named queries (``TaskARNByV3EndpointID``, amazon-ecs-agent ``agent/engine/dockerstate``).
Everything it returns is frozen (:class:`TaskSnapshot`, the states of
:mod:`ecslocal.runtime.model`, the task definition through ``MappingProxyType``): an endpoint
cannot change what the engine knows. Task scale-in protection, which the agent API sets, is
an engine command (:meth:`TaskView.set_protection`), not a field an endpoint writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ecslocal.clock import Clock
from ecslocal.runtime.events import Callback, EngineEvent, EventBus
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
    def subscribe(self, callback: Callback, types: Iterable[type[EngineEvent]]) -> None:
        """Be told of the engine's events (a reader keeps per-task state of its own and
        forgets it when the task stops)."""
        ...

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


class _Engine(Protocol):
    """What :class:`EngineView` forwards to (the Agent)."""

    events: EventBus

    def by_endpoint_id(self, endpoint_id: str) -> tuple[str, str] | None: ...
    def snapshot(self, task_id: str) -> TaskSnapshot | None: ...
    def container_usage(self, task_id: str, name: str) -> dict[str, Any] | None: ...
    def set_protection(self, task_id: str, until: float | None) -> TaskState | None: ...


class EngineView:
    """The :class:`TaskView` the daemon gives the endpoints: the protocol's members and
    nothing else of the Agent (no stop, no start, no registries, no publishing on the bus)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def subscribe(self, callback: Callback, types: Iterable[type[EngineEvent]]) -> None:
        self._engine.events.subscribe(callback, types)

    def by_endpoint_id(self, endpoint_id: str) -> tuple[str, str] | None:
        return self._engine.by_endpoint_id(endpoint_id)

    def snapshot(self, task_id: str) -> TaskSnapshot | None:
        return self._engine.snapshot(task_id)

    def container_usage(self, task_id: str, name: str) -> dict[str, Any] | None:
        return self._engine.container_usage(task_id, name)

    def set_protection(self, task_id: str, until: float | None) -> TaskState | None:
        return self._engine.set_protection(task_id, until)
