"""What the engine is asked to run: a :class:`TaskPlan`, decided before the engine sees it.

RunTask's rules (``api/ecs_runtask.py``: launch type, capacity provider, overrides, roles,
tags, environment, the ecslocal tags) turn a request and a task definition into plans; the
engine (:meth:`ecslocal.runtime.agent.Agent.start_task`) runs a plan as given, adding only what
it owns: the task's ids, its endpoints (credentials, metadata, STS) and its clock. A plan
carries no AWS error vocabulary: a request that breaks a rule never becomes one. Next, a
service scheduler makes plans the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPlan:
    #: The container definition with the RunTask override's memory, memoryReservation, cpu.
    definition: Mapping[str, Any]
    #: Its environment (environment files, ``environment``, the override's, AWS_EXECUTION_ENV,
    #: AWS_REGION); the engine adds the task's endpoints' variables under what is set here.
    env: Mapping[str, str]
    #: entryPoint + command, as Docker combines them.
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskPlan:
    #: The task definition (frozen).
    definition: Mapping[str, Any]
    cluster_arn: str
    launch_type: str
    #: The ``TaskOverride`` as the task reports it (a ``containerOverrides`` entry for each
    #: container, task cpu/memory in CPU units and MiB).
    overrides: Mapping[str, Any]
    containers: tuple[ContainerPlan, ...]
    #: The task role the containers' credentials are for (the override's or the definition's).
    role_arn: str | None
    group: str
    availability_zone: str
    started_by: str | None = None
    tags: tuple[Mapping[str, str], ...] = ()
    enable_execute_command: bool = False
    capacity_provider_name: str | None = None
    cpu: str | None = None
    memory: str | None = None
    platform_version: str | None = None
    platform_family: str | None = None
    ephemeral_storage: Mapping[str, Any] | None = None
    #: ``ecslocal:time-warp``: the task's clock runs this many times faster.
    time_warp: float | None = None
    #: ``ecslocal:credential-ttl``: seconds of the task's clock its credentials last.
    credential_ttl: float | None = None
    #: What was noticed while planning (static keys shadowing the task role), said at start.
    diagnostics: tuple[str, ...] = ()


class StartRefused(Exception):
    """The engine cannot run this plan (the message says why; RunTask reports it)."""
