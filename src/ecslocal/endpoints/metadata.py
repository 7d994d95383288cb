"""Task metadata endpoint v4 (and v3): what ``$ECS_CONTAINER_METADATA_URI_V4`` answers.

Routes, per container endpoint id (a UUID per container, as the agent makes them):
``/v4/{id}`` (this container), ``/v4/{id}/task``, ``/v4/{id}/taskWithTags``, ``/v4/{id}/stats``,
``/v4/{id}/task/stats``; the same under ``/v3``, without the v4-only fields. Field names and
types follow the agent's responses (``ecs-agent/tmds/handlers/v2/response.go``,
``v4/state/response.go``, builder ``agent/handlers/v2/response.go``). An unknown id is a 404
whose body is a JSON string, worded as the agent's (``ecs-agent/tmds/handlers/v4/handlers.go``,
``agent/handlers/v4/tmdsstate.go``).

Served as sub-apps of :mod:`ecslocal.endpoints.app` (``/v3``, ``/v4``, and the agent API under
``/api``): the container's endpoint id is the request's scope; faults (target ``metadata``, the
agent API included: it is the same server in the agent) and the task's rate limit are the
pipeline's.

The endpoint sees the engine through :class:`ecslocal.runtime.view.TaskView` only: frozen
snapshots of running tasks, and one command (task protection). What it keeps between
requests (each container's previous stats, for ``preread``/``precpu_stats``) is its own,
forgotten when the task stops.

Stats are read from the container's real processes (its memory cgroup or process tree) and
shaped like Docker's stats; counters ecslocal cannot see (block I/O, per-interface network) are
reported as zero.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ecslocal.endpoints.app import Scope, scope_of
from ecslocal.runtime.events import Event, TaskStateChanged
from ecslocal.runtime.health import UNKNOWN, HealthReport
from ecslocal.runtime.view import ContainerSnapshot, TaskSnapshot, TaskView


def rfc3339_nano(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# KnownStatus is the agent's own status, not the ECS API's lastStatus. Task statuses:
# NONE, MANIFEST_PULLED, CREATED, RUNNING, STOPPED (ecs-agent/api/task/status/taskstatus.go);
# container statuses: NONE, MANIFEST_PULLED, PULLED, CREATED, RUNNING, RESOURCES_PROVISIONED,
# STOPPED (ecs-agent/api/container/status/containerstatus.go).
TASK_KNOWN_STATUS = {
    "PROVISIONING": "NONE",
    "PENDING": "CREATED",
    "RUNNING": "RUNNING",
    "STOPPING": "RUNNING",
    "DEPROVISIONING": "STOPPED",
    "STOPPED": "STOPPED",
}
CONTAINER_KNOWN_STATUS = {
    "PROVISIONING": "NONE",
    "PENDING": "PULLED",
    "RUNNING": "RUNNING",
    "STOPPED": "STOPPED",
}
#: EC2: "Null, zero, and CPU values of 1 are passed to Docker as two CPU shares", and the agent
#: reports them so (minimumCPUUnit in agent/handlers/v2/response.go).
MIN_CPU_UNITS = 2
_NOT_IN_DOCKER_NAME = re.compile(r"[^A-Za-z0-9-]+")


def docker_name(family: str, revision: object, container: str, runtime_id: str) -> str:
    """The agent's Docker container name on EC2: ``ecs-<family>-<revision>-<container name
    without characters outside [A-Za-z0-9-]>-<RandHex()>`` (agent/engine/docker_task_engine.go).
    The 20 hex digits derive from the container's runtime id, so they stay the same for the
    container's life."""
    suffix = hashlib.sha256(runtime_id.encode()).hexdigest()[:20]
    return f"ecs-{family}-{revision}-{_NOT_IN_DOCKER_NAME.sub('', container)}-{suffix}"


#: Route name -> the handler an unknown endpoint id's 404 names.
_HANDLER_NAMES = {
    "container": "container metadata",
    "task": "task metadata",
    "taskWithTags": "task metadata",
    "stats": "container stats",
    "task-stats": "task stats",
}
Found = tuple[TaskSnapshot, ContainerSnapshot]


class MetadataEndpoint:
    def __init__(self, view: TaskView) -> None:
        self.view = view
        #: Task id -> container name -> what its last stats read ({"read", "cpu", "system"}).
        self._last_stats: dict[str, dict[str, dict[str, Any]]] = {}
        view.subscribe(self._forget, [TaskStateChanged])

    def _forget(self, event: Event) -> None:
        if isinstance(event, TaskStateChanged) and event.last_status == "STOPPED":
            self._last_stats.pop(event.task_id, None)

    def routes(self) -> list[web.RouteDef]:
        """Relative to ``/v3`` or ``/v4`` (one sub-app each)."""
        return [
            web.get("/{endpoint_id}", self.container, name="container"),
            web.get("/{endpoint_id}/task", self.task, name="task"),
            web.get("/{endpoint_id}/taskWithTags", self.task_with_tags, name="taskWithTags"),
            web.get("/{endpoint_id}/stats", self.container_stats, name="stats"),
            web.get("/{endpoint_id}/task/stats", self.task_stats, name="task-stats"),
        ]

    def agent_api_routes(self) -> list[web.RouteDef]:
        """Relative to ``/api`` ($ECS_AGENT_URI is ``/api/{endpoint_id}``)."""
        return [
            web.get("/{endpoint_id}/task-protection/v1/state", self.get_protection),
            web.put("/{endpoint_id}/task-protection/v1/state", self.put_protection),
        ]

    # -- scopes -----------------------------------------------------------------------------
    def resolve(self, request: web.Request) -> Scope[Found] | web.Response:
        found = self._find(request)
        if found is None:
            name = request.match_info.route.name or "container"
            return self._not_found(request, _HANDLER_NAMES[name])
        return Scope("metadata", found[0].task_id, found)

    def resolve_agent_api(self, request: web.Request) -> Scope[Found] | web.Response:
        found = self._find(request)
        if found is None:
            return web.json_response("Invalid request: no task was found", status=404)
        return Scope("metadata", found[0].task_id, found)

    # -- lookup -----------------------------------------------------------------------------
    def _find(self, request: web.Request) -> Found | None:
        found = self.view.by_endpoint_id(request.match_info["endpoint_id"])
        if found is None:
            return None
        task_id, name = found
        run = self.view.snapshot(task_id)
        if run is None:
            return None
        return run, run.container(name)

    def _not_found(self, request: web.Request, handler: str) -> web.Response:
        """``handler``: "container metadata", "task metadata", "container stats" or "task
        stats". The stats handlers look the task up first, so both say the task was not found."""
        endpoint_id = request.match_info["endpoint_id"]
        version = request.path.split("/")[1].upper()
        if handler == "container metadata":
            reason = (
                "unable to get container ID from request: unable to get docker ID from v3"
                f" endpoint ID: {endpoint_id}"
            )
        else:
            reason = (
                "unable to get task arn from request: unable to get task Arn from v3 endpoint"
                f" ID: {endpoint_id}"
            )
        return web.json_response(f"{version} {handler} handler: {reason}", status=404)

    # -- documents --------------------------------------------------------------------------
    def container_doc(
        self, run: TaskSnapshot, c: ContainerSnapshot, v4: bool = True
    ) -> dict[str, Any]:
        task = run.state
        state = c.state
        runtime_id = state.runtime_id or ""
        definition = run.definition
        cluster = task.cluster_arn
        fargate = task.launch_type == "FARGATE"
        image = c.definition.get("image", "")
        cpu = float(c.definition.get("cpu") or 0)
        if not fargate:
            cpu = max(cpu, MIN_CPU_UNITS)
        doc: dict[str, Any] = {
            "DockerId": runtime_id,
            "Name": state.name,
            "DockerName": state.name
            if fargate
            else docker_name(definition["family"], definition["revision"], state.name, runtime_id),
            "Image": image,
            # Docker's image ID (the config blob's digest) of a pulled ECR image; a host
            # command has none: a stable digest of the image reference stands in.
            "ImageID": state.image_id or "sha256:" + hashlib.sha256(image.encode()).hexdigest(),
            "Labels": {
                "com.amazonaws.ecs.cluster": cluster,
                "com.amazonaws.ecs.container-name": state.name,
                "com.amazonaws.ecs.task-arn": task.task_arn,
                "com.amazonaws.ecs.task-definition-family": definition["family"],
                "com.amazonaws.ecs.task-definition-version": str(definition["revision"]),
                **(c.definition.get("dockerLabels") or {}),
            },
            "DesiredStatus": task.desired_status if state.last_status != "STOPPED" else "STOPPED",
            "KnownStatus": CONTAINER_KNOWN_STATUS.get(state.last_status, "NONE"),
            "Limits": {
                "CPU": cpu,
                "Memory": int(
                    c.definition.get("memory")
                    or c.definition.get("memoryReservation")
                    or task.memory
                    or 0
                ),
            },
            "Type": "NORMAL",
            "Networks": [
                {
                    "NetworkMode": definition.get("networkMode", "awsvpc" if fargate else "bridge"),
                    "IPv4Addresses": ["127.0.0.1"],
                }
            ],
        }
        if state.started_at is not None:
            # A process is created and started at once: the container's own creation time.
            doc["CreatedAt"] = rfc3339_nano(state.started_at)
            doc["StartedAt"] = rfc3339_nano(state.started_at)
        if state.finished_at is not None:
            doc["FinishedAt"] = rfc3339_nano(state.finished_at)
        if state.exit_code is not None:
            doc["ExitCode"] = state.exit_code
        log = c.definition.get("logConfiguration")
        if v4:
            doc["ContainerARN"] = state.container_arn
        if log and v4:
            doc["LogDriver"] = log.get("logDriver")
            doc["LogOptions"] = dict(log.get("options") or {})
        ports = c.definition.get("portMappings") or []
        if ports:
            doc["Ports"] = [
                {
                    "ContainerPort": p.get("containerPort"),
                    "Protocol": p.get("protocol", "tcp"),
                    "HostPort": p.get("hostPort", p.get("containerPort")),
                    **({"HostIp": "127.0.0.1"} if v4 else {}),
                }
                for p in ports
            ]
        if c.definition.get("healthCheck"):
            doc["Health"] = health_doc(c.health or HealthReport())
        return doc

    def task_doc(
        self, run: TaskSnapshot, with_tags: bool = False, v4: bool = True
    ) -> dict[str, Any]:
        task = run.state
        definition = run.definition
        doc: dict[str, Any] = {
            "Cluster": task.cluster_arn,
            "TaskARN": task.task_arn,
            "Family": definition["family"],
            "Revision": str(definition["revision"]),
            "DesiredStatus": task.desired_status,
            "KnownStatus": TASK_KNOWN_STATUS.get(task.last_status, "NONE"),
            "Containers": [self.container_doc(run, c, v4) for c in run.containers],
            "PullStartedAt": rfc3339_nano(task.pull_started_at),
            "PullStoppedAt": rfc3339_nano(task.pull_stopped_at),
            "AvailabilityZone": task.availability_zone,
            "LaunchType": task.launch_type if v4 else None,
            "FaultInjectionEnabled": False,
        }
        limits: dict[str, Any] = {}
        if task.cpu:
            limits["CPU"] = int(task.cpu) / 1024
        if task.memory:
            limits["Memory"] = int(task.memory)
        if limits:
            doc["Limits"] = limits
        if task.execution_stopped_at:
            doc["ExecutionStoppedAt"] = rfc3339_nano(task.execution_stopped_at)
        if with_tags:
            doc["TaskTags"] = {t["key"]: t.get("value", "") for t in task.tags}
            doc["ContainerInstanceTags"] = {}
        return {k: v for k, v in doc.items() if v is not None}

    def stats_doc(self, run: TaskSnapshot, c: ContainerSnapshot) -> dict[str, Any] | None:
        name = c.state.name
        usage = self.view.container_usage(run.task_id, name)
        if usage is None:
            return None
        now = run.clock.time()
        ncpu = os.cpu_count() or 1
        cpu_ns = int(usage["cpu_seconds"] * 1e9)
        limit = int(c.definition.get("memory") or 0) * 1024 * 1024 or _host_memory()
        baselines = self._last_stats.setdefault(run.task_id, {})
        previous = baselines.get(name) or {"read": None, "cpu": 0, "system": 0}
        system = int(time.monotonic() * 1e9 * ncpu)
        doc = {
            "read": rfc3339_nano(now),
            "preread": previous["read"] or "0001-01-01T00:00:00Z",
            "num_procs": 0,
            "pids_stats": {"current": usage["pids"]},
            "memory_stats": {"usage": usage["memory_bytes"], "limit": limit, "stats": {}},
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": cpu_ns,
                    "usage_in_kernelmode": 0,
                    "usage_in_usermode": cpu_ns,
                },
                "system_cpu_usage": system,
                "online_cpus": ncpu,
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": previous["cpu"]},
                "system_cpu_usage": previous["system"],
                "online_cpus": ncpu,
            },
            "blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": []},
            "storage_stats": {},
            "name": name,
            "id": c.state.runtime_id or "",
            "networks": {
                "eth0": {
                    "rx_bytes": 0,
                    "rx_packets": 0,
                    "rx_errors": 0,
                    "rx_dropped": 0,
                    "tx_bytes": 0,
                    "tx_packets": 0,
                    "tx_errors": 0,
                    "tx_dropped": 0,
                }
            },
            "network_rate_stats": {"rx_bytes_per_sec": 0, "tx_bytes_per_sec": 0},
        }
        baselines[name] = {"read": doc["read"], "cpu": cpu_ns, "system": system}
        return doc

    # -- task scale-in protection ($ECS_AGENT_URI/task-protection/v1/state) -------------
    def _protection_doc(self, run: TaskSnapshot) -> dict[str, Any]:
        until = run.state.protected_until
        enabled = until is not None and until > run.clock.time()
        return {
            "protection": {
                "ExpirationDate": rfc3339_nano(until) if enabled else None,
                "ProtectionEnabled": enabled,
                "TaskArn": run.state.task_arn,
            }
        }

    def _protection_error(
        self, run: TaskSnapshot | None, code: str, message: str, status: int
    ) -> web.Response:
        arn = run.state.task_arn if run else ""
        body = {"requestID": None, "error": {"Arn": arn, "Code": code, "Message": message}}
        return web.json_response(body, status=status)

    async def get_protection(self, request: web.Request) -> web.Response:
        run = scope_of(request).found[0]
        if not run.definition.get("taskRoleArn") and not run.state.overrides.get("taskRoleArn"):
            return self._protection_error(
                run,
                "AccessDeniedException",
                "Invalid Request: no task IAM role credentials available for task",
                403,
            )
        return web.json_response(self._protection_doc(run))

    async def put_protection(self, request: web.Request) -> web.Response:
        run = scope_of(request).found[0]
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or set(body) - {"ProtectionEnabled", "ExpiresInMinutes"}:
            return self._protection_error(
                run,
                "InvalidParameterException",
                "Invalid request: failed to decode request",
                400,
            )
        if not isinstance(body.get("ProtectionEnabled"), bool):
            return self._protection_error(
                run,
                "InvalidParameterException",
                "Invalid request: does not contain 'ProtectionEnabled' field",
                400,
            )
        minutes = body.get("ExpiresInMinutes", PROTECTION_DEFAULT_MINUTES)
        if not isinstance(minutes, int) or not 1 <= minutes <= PROTECTION_MAX_MINUTES:
            return self._protection_error(
                run,
                "InvalidParameterException",
                "expiresInMinutes must be between 1 and 2880",
                400,
            )
        if not run.definition.get("taskRoleArn") and not run.state.overrides.get("taskRoleArn"):
            return self._protection_error(
                run,
                "AccessDeniedException",
                "Invalid Request: no task IAM role credentials available for task",
                403,
            )
        until = run.clock.time() + minutes * 60 if body["ProtectionEnabled"] else None
        state = self.view.set_protection(run.task_id, until)
        if state is None:  # the task ended meanwhile
            return web.json_response("Invalid request: no task was found", status=404)
        return web.json_response(self._protection_doc(replace(run, state=state)))

    # -- handlers (the scope found the task and container) ----------------------------------
    async def container(self, request: web.Request) -> web.Response:
        run, c = scope_of(request).found
        return web.json_response(self.container_doc(run, c, v4=_is_v4(request)))

    async def task(self, request: web.Request) -> web.Response:
        run = scope_of(request).found[0]
        return web.json_response(self.task_doc(run, v4=_is_v4(request)))

    async def task_with_tags(self, request: web.Request) -> web.Response:
        run = scope_of(request).found[0]
        return web.json_response(self.task_doc(run, with_tags=True, v4=_is_v4(request)))

    async def container_stats(self, request: web.Request) -> web.Response:
        run, c = scope_of(request).found
        return web.json_response(self.stats_doc(run, c))

    async def task_stats(self, request: web.Request) -> web.Response:
        run = scope_of(request).found[0]
        return web.json_response(
            {c.state.runtime_id or "": self.stats_doc(run, c) for c in run.containers}
        )


PROTECTION_DEFAULT_MINUTES = 120
PROTECTION_MAX_MINUTES = 2880


def _is_v4(request: web.Request) -> bool:
    return request.path.startswith("/v4/")


def health_doc(report: HealthReport) -> dict[str, Any]:
    """A container's ``Health``, lowercase keys as the agent's ``HealthStatus``: each field is
    omitempty, so an unknown status, a 0 exit code or an empty output are left out."""
    doc: dict[str, Any] = {}
    if report.status != UNKNOWN:
        doc["status"] = report.status
    if report.since is not None:
        doc["statusSince"] = rfc3339_nano(report.since)
    if report.exit_code:
        doc["exitCode"] = report.exit_code
    if report.output:
        doc["output"] = report.output
    return doc


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
