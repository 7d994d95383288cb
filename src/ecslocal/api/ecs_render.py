"""The ECS ``Task`` document, rendered from the engine's state in one place.

DescribeTasks, RunTask and StopTask answer with it (botocore ``ecs`` model, shapes ``Task`` and
``Container``). Members are ECS's; ``None`` members are left out (the output serializer drops
them anyway, and the API reference documents every one as optional); timestamps stay epoch
seconds on the daemon's clock, which the JSON protocol sends as numbers (``unixTimestamp``,
see ``ecslocal/timefmt.py``). ecslocal's own fields of the state (the container that stopped
the task, the diagnostics, task protection) are never rendered.
"""

from __future__ import annotations

from typing import Any

from ecslocal.runtime.model import ContainerState, TaskState, thaw


def render_container(c: ContainerState) -> dict[str, Any]:
    """One ``Container`` of a task."""
    doc: dict[str, Any] = {
        "containerArn": c.container_arn,
        "taskArn": c.task_arn,
        "name": c.name,
        "image": c.image,
        "lastStatus": c.last_status,
        "networkBindings": thaw(c.network_bindings),
        "networkInterfaces": thaw(c.network_interfaces),
        "cpu": c.cpu,
        "healthStatus": c.health_status,
    }
    for key, value in (
        ("memory", c.memory),
        ("memoryReservation", c.memory_reservation),
        ("imageDigest", c.image_digest),
        ("runtimeId", c.runtime_id),
        ("exitCode", c.exit_code),
        ("reason", c.reason),
    ):
        if value is not None:
            doc[key] = value
    return doc


def render_task(state: TaskState, include_tags: bool = True) -> dict[str, Any]:
    """The task as DescribeTasks shows it: ``tags`` only when asked for (DescribeTasks'
    ``include: ["TAGS"]``; RunTask's answer carries them)."""
    doc: dict[str, Any] = {
        "taskArn": state.task_arn,
        "clusterArn": state.cluster_arn,
        "taskDefinitionArn": state.task_definition_arn,
        "overrides": thaw(state.overrides),
        "lastStatus": state.last_status,
        "desiredStatus": state.desired_status,
        "containers": [render_container(c) for c in state.containers],
        "createdAt": state.created_at,
        "version": state.version,
        "healthStatus": state.health_status,
        "attachments": thaw(state.attachments),
        "attributes": thaw(state.attributes),
        "enableExecuteCommand": state.enable_execute_command,
    }
    if include_tags:
        doc["tags"] = thaw(state.tags)
    for key, value in (
        ("launchType", state.launch_type),
        ("capacityProviderName", state.capacity_provider_name),
        ("group", state.group),
        ("startedBy", state.started_by),
        ("availabilityZone", state.availability_zone),
        ("cpu", state.cpu),
        ("memory", state.memory),
        ("platformVersion", state.platform_version),
        ("platformFamily", state.platform_family),
        ("ephemeralStorage", thaw(state.ephemeral_storage)),
        ("pullStartedAt", state.pull_started_at),
        ("pullStoppedAt", state.pull_stopped_at),
        ("startedAt", state.started_at),
        ("connectivity", state.connectivity),
        ("connectivityAt", state.connectivity_at),
        ("stopCode", state.stop_code),
        ("stoppedReason", state.stopped_reason),
        ("stoppingAt", state.stopping_at),
        ("executionStoppedAt", state.execution_stopped_at),
        ("stoppedAt", state.stopped_at),
    ):
        if value is not None:
            doc[key] = value
    return doc
