"""Task metadata endpoint v4 (and v3): what ``$ECS_CONTAINER_METADATA_URI_V4`` answers.

Routes, per container endpoint id (a UUID per container, as the agent makes them):
``/v4/{id}`` (this container), ``/v4/{id}/task``, ``/v4/{id}/taskWithTags``, ``/v4/{id}/stats``,
``/v4/{id}/task/stats``; the same under ``/v3``. Field names and types follow the agent's
responses (``ecs-agent/tmds/handlers/v2/response.go``, ``v4/state/response.go``). An unknown id
is a 404 whose body is a JSON string, as the agent's.

Stats are read from the container's real processes (its memory cgroup or process tree) and
shaped like Docker's stats; counters ecslocal cannot see (block I/O, per-interface network) are
reported as zero.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ecslocal.endpoints.faults import Faults, apply
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.task import ContainerRun, TaskRun


def rfc3339_nano(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _known_status(status: str) -> str:
    # The agent's container statuses: NONE, PULLED, CREATED, RUNNING, STOPPED.
    return {"PENDING": "PULLED", "PROVISIONING": "NONE"}.get(status, status)


class MetadataEndpoint:
    def __init__(self, agent: Agent, faults: Faults | None = None) -> None:
        self.agent = agent
        self.faults = faults

    def routes(self) -> list[web.RouteDef]:
        out = []
        for version in ("v3", "v4"):
            base = f"/{version}/{{endpoint_id}}"
            out += [
                web.get(base, self.container),
                web.get(f"{base}/task", self.task),
                web.get(f"{base}/taskWithTags", self.task_with_tags),
                web.get(f"{base}/stats", self.container_stats),
                web.get(f"{base}/task/stats", self.task_stats),
            ]
        out += [
            web.get("/api/{endpoint_id}/task-protection/v1/state", self.get_protection),
            web.put("/api/{endpoint_id}/task-protection/v1/state", self.put_protection),
        ]
        return out

    # -- lookup -----------------------------------------------------------------------------
    def _find(self, request: web.Request) -> tuple[TaskRun, ContainerRun] | None:
        found = self.agent.metadata_ids.get(request.match_info["endpoint_id"])
        if found is None:
            return None
        task_id, name = found
        run = self.agent.tasks.get(task_id)
        if run is None:
            return None
        return run, run.containers[name]

    def _not_found(self, request: web.Request, what: str) -> web.Response:
        endpoint_id = request.match_info["endpoint_id"]
        version = request.path.split("/")[1].upper()
        if what == "task":
            message = (
                f"{version} task metadata handler: unable to get task arn from request: unable"
                f" to get task Arn from v3 endpoint ID: {endpoint_id}"
            )
        else:
            message = (
                f"{version} container metadata handler: unable to get container ID from"
                f" request: unable to get docker ID from v3 endpoint ID: {endpoint_id}"
            )
        return web.json_response(message, status=404)

    # -- documents --------------------------------------------------------------------------
    def container_doc(self, run: TaskRun, c: ContainerRun) -> dict[str, Any]:
        task = run.task
        definition = run.definition
        cluster = task["clusterArn"]
        fargate = task.get("launchType") == "FARGATE"
        image = c.definition.get("image", "")
        docker_name = (
            c.name
            if fargate
            else f"ecs-{definition['family']}-{definition['revision']}-{c.name}-"
            f"{c.runtime_id.rsplit('-', 1)[-1]}"
        )
        doc: dict[str, Any] = {
            "DockerId": c.runtime_id,
            "Name": c.name,
            "DockerName": docker_name,
            "Image": image,
            # No local image store yet: a stable digest of the image reference.
            "ImageID": "sha256:" + hashlib.sha256(image.encode()).hexdigest(),
            "Labels": {
                "com.amazonaws.ecs.cluster": cluster,
                "com.amazonaws.ecs.container-name": c.name,
                "com.amazonaws.ecs.task-arn": task["taskArn"],
                "com.amazonaws.ecs.task-definition-family": definition["family"],
                "com.amazonaws.ecs.task-definition-version": str(definition["revision"]),
                **(c.definition.get("dockerLabels") or {}),
            },
            "DesiredStatus": task["desiredStatus"] if c.status != "STOPPED" else "STOPPED",
            "KnownStatus": _known_status(c.status),
            "Limits": {
                "CPU": float(c.definition.get("cpu") or (2 if not fargate else 0)),
                "Memory": int(c.definition.get("memory") or c.definition.get("memoryReservation")
                              or task.get("memory") or 0),
            },
            "CreatedAt": rfc3339_nano(task.get("createdAt")),
            "Type": "NORMAL",
            "ContainerARN": c.doc.get("containerArn"),
            "Networks": [
                {
                    "NetworkMode": definition.get("networkMode", "awsvpc" if fargate else "bridge"),
                    "IPv4Addresses": ["127.0.0.1"],
                }
            ],
        }
        if c.started_wall is not None:
            doc["StartedAt"] = rfc3339_nano(c.started_wall)
        if c.finished_wall is not None:
            doc["FinishedAt"] = rfc3339_nano(c.finished_wall)
        if c.doc.get("exitCode") is not None:
            doc["ExitCode"] = c.doc["exitCode"]
        log = c.definition.get("logConfiguration")
        if log:
            doc["LogDriver"] = log.get("logDriver")
            doc["LogOptions"] = log.get("options") or {}
        ports = c.definition.get("portMappings") or []
        if ports:
            doc["Ports"] = [
                {
                    "ContainerPort": p.get("containerPort"),
                    "Protocol": p.get("protocol", "tcp"),
                    "HostPort": p.get("hostPort", p.get("containerPort")),
                    "HostIp": "127.0.0.1",
                }
                for p in ports
            ]
        if c.health is not None and c.doc.get("healthStatus") in ("HEALTHY", "UNHEALTHY"):
            doc["Health"] = {"status": c.doc["healthStatus"]}
        return doc

    def task_doc(self, run: TaskRun, with_tags: bool = False) -> dict[str, Any]:
        task = run.task
        definition = run.definition
        doc: dict[str, Any] = {
            "Cluster": task["clusterArn"],
            "TaskARN": task["taskArn"],
            "Family": definition["family"],
            "Revision": str(definition["revision"]),
            "DesiredStatus": task["desiredStatus"],
            "KnownStatus": task["lastStatus"],
            "Containers": [self.container_doc(run, c) for c in run.containers.values()],
            "PullStartedAt": rfc3339_nano(task.get("pullStartedAt")),
            "PullStoppedAt": rfc3339_nano(task.get("pullStoppedAt")),
            "AvailabilityZone": task.get("availabilityZone"),
            "LaunchType": task.get("launchType"),
            "FaultInjectionEnabled": False,
        }
        limits: dict[str, Any] = {}
        if task.get("cpu"):
            limits["CPU"] = int(task["cpu"]) / 1024
        if task.get("memory"):
            limits["Memory"] = int(task["memory"])
        if limits:
            doc["Limits"] = limits
        if task.get("executionStoppedAt"):
            doc["ExecutionStoppedAt"] = rfc3339_nano(task["executionStoppedAt"])
        if with_tags:
            doc["TaskTags"] = {t["key"]: t["value"] for t in task.get("tags") or []}
            doc["ContainerInstanceTags"] = {}
        return {k: v for k, v in doc.items() if v is not None}

    def stats_doc(self, run: TaskRun, c: ContainerRun) -> dict[str, Any] | None:
        if c.handle is None or c.status != "RUNNING":
            return None
        usage = c.handle.stats()
        now = run.task_clock.time()
        ncpu = os.cpu_count() or 1
        cpu_ns = int(usage["cpu_seconds"] * 1e9)
        limit = int(c.definition.get("memory") or 0) * 1024 * 1024 or _host_memory()
        previous = c.last_stats or {"read": None, "cpu": 0, "system": 0}
        system = int(time.monotonic() * 1e9 * ncpu)
        doc = {
            "read": rfc3339_nano(now),
            "preread": previous["read"] or "0001-01-01T00:00:00Z",
            "num_procs": 0,
            "pids_stats": {"current": usage["pids"]},
            "memory_stats": {"usage": usage["memory_bytes"], "limit": limit, "stats": {}},
            "cpu_stats": {
                "cpu_usage": {"total_usage": cpu_ns, "usage_in_kernelmode": 0,
                              "usage_in_usermode": cpu_ns},
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
            "name": c.name,
            "id": c.runtime_id,
            "networks": {"eth0": {"rx_bytes": 0, "rx_packets": 0, "rx_errors": 0,
                                  "rx_dropped": 0, "tx_bytes": 0, "tx_packets": 0,
                                  "tx_errors": 0, "tx_dropped": 0}},
            "network_rate_stats": {"rx_bytes_per_sec": 0, "tx_bytes_per_sec": 0},
        }
        c.last_stats = {"read": doc["read"], "cpu": cpu_ns, "system": system}
        return doc

    async def _faulted(self, request: web.Request, run: TaskRun) -> web.Response | None:
        if self.faults is None:
            return None
        return await apply(self.faults.active("metadata", run.task_id), request)

    # -- task scale-in protection ($ECS_AGENT_URI/task-protection/v1/state) -------------
    def _protection_doc(self, run: TaskRun) -> dict[str, Any]:
        state = run.protection
        now = run.task_clock.time()
        enabled = bool(state and state["expires"] > now)
        return {
            "protection": {
                "ExpirationDate": rfc3339_nano(state["expires"]) if enabled and state else None,
                "ProtectionEnabled": enabled,
                "TaskArn": run.task["taskArn"],
            }
        }

    def _protection_error(self, run: TaskRun | None, code: str, message: str,
                          status: int) -> web.Response:
        arn = run.task["taskArn"] if run else ""
        body = {"requestID": None, "error": {"Arn": arn, "Code": code, "Message": message}}
        return web.json_response(body, status=status)

    async def get_protection(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return web.json_response("Invalid request: no task was found", status=404)
        run = found[0]
        if not run.definition.get("taskRoleArn") and not run.task["overrides"].get("taskRoleArn"):
            return self._protection_error(
                run, "AccessDeniedException",
                "Invalid Request: no task IAM role credentials available for task", 403,
            )
        return web.json_response(self._protection_doc(run))

    async def put_protection(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return web.json_response("Invalid request: no task was found", status=404)
        run = found[0]
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or set(body) - {"ProtectionEnabled", "ExpiresInMinutes"}:
            return self._protection_error(
                run, "InvalidParameterException", "Invalid request: failed to decode request",
                400,
            )
        if not isinstance(body.get("ProtectionEnabled"), bool):
            return self._protection_error(
                run, "InvalidParameterException",
                "Invalid request: does not contain 'ProtectionEnabled' field", 400,
            )
        minutes = body.get("ExpiresInMinutes", PROTECTION_DEFAULT_MINUTES)
        if not isinstance(minutes, int) or not 1 <= minutes <= PROTECTION_MAX_MINUTES:
            return self._protection_error(
                run, "InvalidParameterException",
                "expiresInMinutes must be between 1 and 2880", 400,
            )
        if not run.definition.get("taskRoleArn") and not run.task["overrides"].get("taskRoleArn"):
            return self._protection_error(
                run, "AccessDeniedException",
                "Invalid Request: no task IAM role credentials available for task", 403,
            )
        run.protection = (
            {"expires": run.task_clock.time() + minutes * 60}
            if body["ProtectionEnabled"]
            else None
        )
        return web.json_response(self._protection_doc(run))

    # -- handlers ---------------------------------------------------------------------------
    async def container(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return self._not_found(request, "container")
        return await self._faulted(request, found[0]) or web.json_response(
            self.container_doc(*found)
        )

    async def task(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return self._not_found(request, "task")
        return await self._faulted(request, found[0]) or web.json_response(
            self.task_doc(found[0])
        )

    async def task_with_tags(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return self._not_found(request, "task")
        return await self._faulted(request, found[0]) or web.json_response(
            self.task_doc(found[0], with_tags=True)
        )

    async def container_stats(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return self._not_found(request, "container")
        return await self._faulted(request, found[0]) or web.json_response(
            self.stats_doc(*found)
        )

    async def task_stats(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if found is None:
            return self._not_found(request, "task")
        run = found[0]
        return await self._faulted(request, run) or web.json_response(
            {c.runtime_id: self.stats_doc(run, c) for c in run.containers.values()}
        )


PROTECTION_DEFAULT_MINUTES = 120
PROTECTION_MAX_MINUTES = 2880


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
