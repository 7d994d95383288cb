"""What the engine knows of a task and its containers: typed, frozen state.

The engine (:mod:`ecslocal.runtime.task`, :mod:`ecslocal.runtime.agent`) is the only writer:
each change is a new :class:`TaskState` (``dataclasses.replace``), and a new ``version`` is
published as events (:mod:`ecslocal.runtime.events`). Everyone else — the ECS API's renderer
(``api/ecs_render.py``), the task metadata endpoint, the event stream — reads a state and
cannot change it: the dataclasses are frozen, and what they hold that came from a request
(``overrides``, ``tags``) is frozen too (:func:`freeze`).

Field names follow ECS's ``Task`` and ``Container`` shapes (botocore's ``ecs`` model),
snake_cased; times are epoch seconds on the daemon's clock. Three fields are ecslocal's own and
never reach DescribeTasks: which container stopped the task (``ecslocal run``'s exit code),
the diagnostics said at start, and a container's pulled image ID (``_imageId``);
``protected_until`` (task scale-in protection, on the task's clock) is not stored.

The store keeps each version as a *record* (:meth:`TaskState.to_record`): the fields under
ECS's camelCase names, which is the very document earlier versions stored (the two internal
fields as ``_stoppedByContainer`` and ``_diagnostics``), so a data dir written by an older
daemon is read back unchanged (:meth:`TaskState.from_record`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

PENDING, RUNNING, STOPPED = "PENDING", "RUNNING", "STOPPED"
UNKNOWN = "UNKNOWN"


def freeze(value: Any) -> Any:
    """A read-only copy of JSON-like data: mappings become ``MappingProxyType``, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON-like data again (dicts and lists) from :func:`freeze`'s output."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


#: Record names that are not the field's camelCase (the internal fields, as stored before).
_RECORD_NAMES = {
    "stopped_by_container": "_stoppedByContainer",
    "diagnostics": "_diagnostics",
    "image_id": "_imageId",
}
#: Fields a record never carries (engine-only, gone with the daemon).
_NOT_STORED = frozenset({"protected_until"})


@functools.cache
def _names(cls: type) -> tuple[tuple[str, str], ...]:
    """(field, record key) of each stored field of ``cls``, computed once per class."""
    return tuple(
        (f.name, _RECORD_NAMES.get(f.name, _camel(f.name)))
        for f in fields(cls)
        if f.name not in _NOT_STORED
    )


def _record_of(state: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in _names(type(state)):
        value = getattr(state, name)
        if value is None:
            continue
        if name == "containers":
            out[key] = [c.to_record() for c in value]
        elif isinstance(value, (Mapping, tuple)):
            out[key] = thaw(value)
        else:
            out[key] = value
    return out


def _from_record(cls: type, record: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, key in _names(cls):
        value = record.get(key)
        if value is not None:
            kwargs[name] = value
    return kwargs


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerState:
    """One container of a task (ECS ``Container``)."""

    container_arn: str
    task_arn: str
    name: str
    image: str
    last_status: str = PENDING
    #: CPU units and MiB as ECS reports them: strings (botocore ``Container.cpu``/``memory``).
    cpu: str = "0"
    memory: str | None = None
    memory_reservation: str | None = None
    runtime_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    #: DescribeTasks reports UNKNOWN for a container with no health check, too.
    health_status: str = UNKNOWN
    network_bindings: tuple[Mapping[str, Any], ...] = ()
    network_interfaces: tuple[Mapping[str, Any], ...] = ()
    #: The manifest digest its image resolved to at task start (ECS ``Container.imageDigest``),
    #: for an image pulled from the daemon's ECR; None for a host command.
    image_digest: str | None = None
    #: ecslocal's own: the image ID of what was pulled (its config's digest: the task
    #: metadata's ``ImageID``); None when nothing was pulled.
    image_id: str | None = None
    #: When its process started and ended (the metadata endpoint's CreatedAt/StartedAt and
    #: FinishedAt; ECS's Container shape has no such field).
    started_at: float | None = None
    finished_at: float | None = None

    def to_record(self) -> dict[str, Any]:
        return _record_of(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ContainerState:
        kwargs = _from_record(cls, record)
        for key in ("network_bindings", "network_interfaces"):
            kwargs[key] = freeze(kwargs.get(key, ()))
        return cls(**kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState:
    """One task (ECS ``Task``): a new instance for each change the engine makes."""

    task_arn: str
    cluster_arn: str
    task_definition_arn: str
    #: The ``TaskOverride`` the task runs with (frozen; :func:`thaw` for a plain copy).
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    last_status: str = "PROVISIONING"
    desired_status: str = RUNNING
    containers: tuple[ContainerState, ...] = ()
    created_at: float = 0.0
    version: int = 0
    launch_type: str | None = None
    capacity_provider_name: str | None = None
    group: str | None = None
    started_by: str | None = None
    availability_zone: str | None = None
    health_status: str = UNKNOWN
    attachments: tuple[Mapping[str, Any], ...] = ()
    attributes: tuple[Mapping[str, Any], ...] = ()
    tags: tuple[Mapping[str, str], ...] = ()
    enable_execute_command: bool = False
    cpu: str | None = None
    memory: str | None = None
    platform_version: str | None = None
    platform_family: str | None = None
    ephemeral_storage: Mapping[str, Any] | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    connectivity: str | None = None
    connectivity_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    #: ecslocal's own: the container whose exit (or failed start) stopped the task.
    stopped_by_container: str | None = None
    #: ecslocal's own: what was noticed at start (static keys shadowing the task role).
    diagnostics: tuple[str, ...] = ()
    #: Task scale-in protection ($ECS_AGENT_URI): until when, on the task's clock.
    protected_until: float | None = None

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]

    def container(self, name: str) -> ContainerState | None:
        return next((c for c in self.containers if c.name == name), None)

    def with_container(self, new: ContainerState) -> TaskState:
        """This state with the container of ``new``'s name replaced by ``new``."""
        return replace(
            self, containers=tuple(new if c.name == new.name else c for c in self.containers)
        )

    def to_record(self) -> dict[str, Any]:
        """What the store keeps (ECS's names; the internal fields with a leading ``_``)."""
        record = _record_of(self)
        if not self.diagnostics:
            record.pop("_diagnostics", None)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TaskState:
        kwargs = _from_record(cls, record)
        kwargs["containers"] = tuple(
            ContainerState.from_record(c) for c in record.get("containers") or ()
        )
        for key in ("overrides", "attachments", "attributes", "tags", "diagnostics"):
            if key in kwargs:
                kwargs[key] = freeze(kwargs[key])
        if "ephemeral_storage" in kwargs:
            kwargs["ephemeral_storage"] = freeze(kwargs["ephemeral_storage"])
        kwargs["created_at"] = float(kwargs.get("created_at", 0.0))
        return cls(**kwargs)
