"""The agent: starts tasks from task definitions, keeps them in the store, recovers after a
restart. The API layer (RunTask, StopTask, DescribeTasks) talks to this class only."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ecslocal import arns
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.errors import invalid_parameter
from ecslocal.runtime import reasons
from ecslocal.runtime.backends.base import Backend
from ecslocal.runtime.endpoints import TaskAccess, TaskEndpoints
from ecslocal.runtime.events import Event, EventBus, TaskStateChanged
from ecslocal.runtime.logs import LogRouter, awslogs_destination
from ecslocal.runtime.task import ContainerRun, TaskRun, new_container_doc
from ecslocal.runtime.timewarp import (
    TIME_WARP_TAG,
    TimeWarp,
    TimeWarps,
    TimeWarpUnavailable,
    parse_speed,
)
from ecslocal.storage.db import StorageError
from ecslocal.store import Store

log = logging.getLogger("ecslocal.agent")


def parse_env_file(path: str) -> dict[str, str]:
    """Docker's --env-file format: VAR=VAL lines; blank lines and # comments skipped."""
    out: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value
        elif key in os.environ:  # "VAR" alone takes the value from the environment
            out[key] = os.environ[key]
    return out


def container_argv(definition: dict[str, Any], override: dict[str, Any]) -> list[str]:
    """entryPoint + command, as Docker combines them (an override's command replaces the
    definition's)."""
    command = override.get("command", definition.get("command")) or []
    return list(definition.get("entryPoint") or []) + list(command)


def container_env(
    definition: dict[str, Any], override: dict[str, Any], launch_type: str, region: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    for env_file in definition.get("environmentFiles") or []:
        path = env_file["value"]
        if path.startswith("arn:"):
            raise invalid_parameter(
                f"environmentFiles value '{path}' is an S3 object; ecslocal reads environment"
                " files from local paths only."
            )
        try:
            env.update(parse_env_file(path.removeprefix("file://")))
        except OSError as exc:
            raise invalid_parameter(
                f"Container '{definition['name']}': cannot read environment file '{path}':"
                f" {exc.strerror}."
            ) from None
    # `environment` takes precedence over environment files (ECS developer guide).
    # KeyValuePair's members are optional in the model: a nameless entry sets nothing.
    for entries in (definition.get("environment"), override.get("environment")):
        env.update({e["name"]: e.get("value") or "" for e in entries or [] if e.get("name")})
    env["AWS_EXECUTION_ENV"] = "AWS_ECS_FARGATE" if launch_type == "FARGATE" else "AWS_ECS_EC2"
    if "AWS_REGION" not in env and "AWS_DEFAULT_REGION" not in env:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region
    return env


CREDENTIAL_TTL_TAG = "ecslocal:credential-ttl"


def tag_value(tags: Sequence[dict[str, str]], key: str) -> str | None:
    for tag in tags:
        if tag.get("key") == key:
            return tag.get("value", "")
    return None


def with_time_warp(env: dict[str, str], warp: TimeWarp) -> None:
    """Give a container's processes the task's warped clock; libfaketime goes first in an
    LD_PRELOAD the container sets itself."""
    for key, value in warp.env.items():
        if key == "LD_PRELOAD" and env.get(key):
            value = f"{value}:{env[key]}"
        env[key] = value
STATIC_KEY_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def static_credentials_warning(name: str, env: dict[str, str], role_arn: str) -> str | None:
    """The classic Fargate mistake, said at start: static keys in a container's environment
    shadow the task role (every SDK's default chain reads the environment first), and a
    session token there expires with nothing to refresh it."""
    found = [k for k in STATIC_KEY_VARS if env.get(k)]
    if not found:
        return None
    message = (
        f"container '{name}' has {', '.join(found)} in its environment and the task has the"
        f" task role {role_arn}: the AWS SDKs' default credential chain uses the environment"
        " first, so the container will not use the role's credentials"
    )
    if "AWS_SESSION_TOKEN" in found:
        message += (
            "; the AWS_SESSION_TOKEN there expires and nothing refreshes it — calls will then"
            " fail with ExpiredToken"
        )
    return message + "."


class Agent:
    def __init__(
        self, config: Config, store: Store, backend: Backend, clock: Clock, logs: LogRouter
    ) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.clock = clock
        self.logs = logs
        self.tasks: dict[str, TaskRun] = {}
        #: Tasks whose last write the store refused (a full disk): the engine goes on, reads
        #: come from here, and the write is retried until it succeeds.
        self._unsaved: dict[str, TaskRun] = {}
        self._unsaved_error: StorageError | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._closing = False  # shutdown's last retry arms no timer
        #: Set by the daemon once it listens: each task's endpoints (credentials, metadata,
        #: STS) and the URL containers reach ecslocal's AWS API (and IMDS) at.
        self.endpoints: TaskEndpoints | None = None
        self.endpoint_url: str | None = None
        #: Where EC2-launch containers reach IMDS: a listener of its own, which a refuse fault
        #: closes (endpoints/listeners.py); None: at endpoint_url.
        self.imds_url: str | None = None
        #: Task metadata endpoint id -> (task id, container name).
        self.metadata_ids: dict[str, tuple[str, str]] = {}
        self.timewarps = TimeWarps()
        #: What the engine says happened (runtime/events.py). The store writer subscribes
        #: first, synchronously: a task's new version is stored before anyone else sees it.
        self.events = EventBus()
        self.events.subscribe(self._persist, [TaskStateChanged], critical=True)

    # -- start ------------------------------------------------------------------------------
    def start_task(
        self,
        definition: dict[str, Any],
        cluster_arn: str,
        *,
        launch_type: str,
        overrides: dict[str, Any] | None = None,
        started_by: str | None = None,
        group: str | None = None,
        tags: Sequence[dict[str, str]] = (),
    ) -> TaskRun:
        overrides = overrides or {}
        cluster_name = cluster_arn.rsplit("/", 1)[-1]
        task_id = secrets.token_hex(16)
        region, account = self.config.region, self.config.account_id
        task_arn = arns.build("ecs", region, account, f"task/{cluster_name}/{task_id}")
        now = self.clock.time()
        warp = self._time_warp(task_id, tags, now)
        try:
            containers, diagnostics = self._containers(
                definition, task_arn, overrides, launch_type, tags, warp
            )
        except BaseException:
            self._release(task_id, [])  # nothing of a task that never started stays behind
            raise
        task: dict[str, Any] = {
            "taskArn": task_arn,
            "clusterArn": cluster_arn,
            "taskDefinitionArn": definition["taskDefinitionArn"],
            "overrides": {
                "containerOverrides": overrides.get("containerOverrides")
                or [{"name": c.name} for c in containers],
                "inferenceAcceleratorOverrides": [],
                **{k: v for k, v in overrides.items() if k != "containerOverrides"},
            },
            "lastStatus": "PROVISIONING",
            "desiredStatus": "RUNNING",
            "containers": [c.doc for c in containers],
            "createdAt": now,
            "version": 0,
            "launchType": launch_type,
            "group": group or f"family:{definition['family']}",
            "availabilityZone": f"{region}a",
            "healthStatus": "UNKNOWN",
            "attachments": [],
            "attributes": [],
            "tags": list(tags),
            "enableExecuteCommand": False,
        }
        if started_by:
            task["startedBy"] = started_by
        if diagnostics:
            task["_diagnostics"] = diagnostics  # internal: not in DescribeTasks
        cpu = overrides.get("cpu", definition.get("cpu"))
        memory = overrides.get("memory", definition.get("memory"))
        if cpu:
            task["cpu"] = str(cpu)
        if memory:
            task["memory"] = str(memory)
        if launch_type == "FARGATE":
            task["platformVersion"] = "1.4.0"
            task["platformFamily"] = "Linux"
            task["ephemeralStorage"] = {"sizeInGiB": 20}
        try:
            for c in containers:
                log_group, _ = awslogs_destination(c.definition, task_id, c.runtime_id)
                if log_group:
                    self.store.ensure_log_group(log_group, now)
        except StorageError:
            self._release(task_id, containers)
            raise
        run = TaskRun(
            task,
            definition,
            containers,
            backend=self.backend,
            clock=self.clock,
            logs=self.logs,
            events=self.events,
            default_stop_timeout=self.config.default_stop_timeout,
            task_clock=warp.clock if warp is not None else None,
        )
        self.tasks[task_id] = run
        run.save()
        if task_id in self._unsaved:  # nothing started yet: RunTask fails, as a whole
            del self.tasks[task_id], self._unsaved[task_id]
            self._release(task_id, containers)
            assert self._unsaved_error is not None
            raise self._unsaved_error
        run.job = asyncio.get_running_loop().create_task(self._run(run))
        return run

    def _containers(
        self,
        definition: dict[str, Any],
        task_arn: str,
        overrides: dict[str, Any],
        launch_type: str,
        tags: Sequence[dict[str, str]],
        warp: TimeWarp | None,
    ) -> tuple[list[ContainerRun], list[str]]:
        """The task's containers with their environment and command, and the diagnostics said
        at start (static keys shadowing the task role)."""
        _, _, _, region, account, resource = task_arn.split(":", 5)
        _, cluster_name, task_id = resource.split("/")
        by_name = {o["name"]: o for o in overrides.get("containerOverrides") or [] if "name" in o}
        injected, access = self._injected_env(task_arn, overrides, definition, tags, warp)
        if launch_type == "EC2" and self.endpoint_url is not None:
            # EC2-launch tasks can reach the instance's metadata service (Fargate's cannot).
            injected["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.imds_url or self.endpoint_url
        role_arn = overrides.get("taskRoleArn") or definition.get("taskRoleArn")
        diagnostics: list[str] = []
        containers: list[ContainerRun] = []
        for cdef in definition["containerDefinitions"]:
            override = by_name.get(cdef["name"], {})
            cdef = dict(cdef)
            for key in ("memory", "memoryReservation", "cpu"):
                if key in override:
                    cdef[key] = override[key]
            doc = new_container_doc(cdef, task_arn, cluster_name, region, account)
            c = ContainerRun(cdef, doc)
            c.runtime_id = f"{task_id}-{secrets.randbelow(10**10):010d}"
            c.env = container_env(cdef, override, launch_type, region)
            warning = role_arn and static_credentials_warning(c.name, c.env, role_arn)
            if warning:
                diagnostics.append(warning)
                log.warning("task %s: %s", task_id, warning)
            own_endpoint = "AWS_ENDPOINT_URL" in c.env
            for key, value in injected.items():
                # What the task's own definition sets wins (an explicit AWS_ENDPOINT_URL, say,
                # which a service-specific AWS_ENDPOINT_URL_STS would otherwise override).
                if own_endpoint and key.startswith("AWS_ENDPOINT_URL_"):
                    continue
                c.env.setdefault(key, value)
            if warp is not None:
                with_time_warp(c.env, warp)
            if access is not None:
                base = access.metadata_url
                c.metadata_id = f"{uuid.uuid4()}"
                self.metadata_ids[c.metadata_id] = (task_id, c.name)
                c.env["ECS_CONTAINER_METADATA_URI_V4"] = f"{base}/v4/{c.metadata_id}"
                c.env["ECS_CONTAINER_METADATA_URI"] = f"{base}/v3/{c.metadata_id}"
                c.env["ECS_AGENT_URI"] = f"{base}/api/{c.metadata_id}"
            c.argv = container_argv(cdef, override)
            containers.append(c)
        return containers, diagnostics

    def _time_warp(
        self, task_id: str, tags: Sequence[dict[str, str]], now: float
    ) -> TimeWarp | None:
        """The task tag ``ecslocal:time-warp`` (a speed-up N): the task's clock, starting at its
        creation and running N times faster, shared by its processes and ecslocal."""
        value = tag_value(tags, TIME_WARP_TAG)
        if value is None:
            return None
        try:
            speed = parse_speed(value)
            return self.timewarps.create(task_id, speed, origin=now)
        except (ValueError, TimeWarpUnavailable) as exc:
            raise invalid_parameter(str(exc)) from None
        except OSError as exc:
            raise invalid_parameter(
                f"Tag {TIME_WARP_TAG}: cannot set up the clock: {exc}."
            ) from None

    def _injected_env(
        self,
        task_arn: str,
        overrides: dict[str, Any],
        definition: dict[str, Any],
        tags: Sequence[dict[str, str]] = (),
        warp: TimeWarp | None = None,
    ) -> tuple[dict[str, str], TaskAccess | None]:
        """Variables every container of the task gets — where the AWS APIs are (ecslocal), the
        task's own STS endpoint and, with a task role, its credentials endpoint (FULL_URI +
        per-task token) — and the task's endpoints. The task tag ``ecslocal:credential-ttl``
        (seconds of the task's clock) overrides the daemon's credential lifetime."""
        env: dict[str, str] = {}
        if self.endpoint_url is None:
            return env, None
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        ttl = None
        value = tag_value(tags, CREDENTIAL_TTL_TAG)
        if value is not None:
            try:
                ttl = float(value)
            except ValueError:
                ttl = -1.0
            if not 2 <= ttl <= 43200:
                raise invalid_parameter(
                    f"Tag {CREDENTIAL_TTL_TAG} must be a number of seconds from 2 to 43200."
                )
        if self.endpoints is None:
            return env, None
        role_arn = overrides.get("taskRoleArn") or definition.get("taskRoleArn") or None
        clock = warp.clock if warp is not None else None
        access = self.endpoints.open(task_arn, role_arn, ttl, clock)
        env.update(access.env)
        return env, access

    async def _run(self, run: TaskRun) -> None:
        try:
            await run.run()
        except Exception:  # never lose a task silently: record why it stopped
            log.exception("task %s failed", run.task_id)
            run.task["stoppedReason"] = "ecslocal internal error while running the task"
            run.task["lastStatus"] = "STOPPED"
            run.task["desiredStatus"] = "STOPPED"
            run.task["stoppedAt"] = self.clock.time()
            for c in run.containers.values():
                if c.handle is not None:
                    c.handle.kill()
            run.save()
        finally:
            self.tasks.pop(run.task_id, None)
            self._release(run.task_id, run.containers.values())

    def _release(self, task_id: str, containers: Iterable[ContainerRun]) -> None:
        """What a task held while it ran: metadata ids, its endpoints, its clock."""
        for c in containers:
            self.metadata_ids.pop(c.metadata_id, None)
        for metadata_id in [k for k, v in self.metadata_ids.items() if v[0] == task_id]:
            del self.metadata_ids[metadata_id]  # a task that failed while being set up
        if self.endpoints is not None:
            self.endpoints.close(task_id)
        self.timewarps.close(task_id)

    def _save(self, run: TaskRun) -> None:
        """Write the task; a refused write never stops the engine (see ``_unsaved``)."""
        try:
            self.store.put_task(run.task_id, run.task, run.recovery_records())
        except StorageError as exc:  # the database logged it (once)
            self._unsaved[run.task_id] = run
            self._unsaved_error = exc
            if self._retry is None and not self._closing:
                self._retry = asyncio.get_running_loop().call_later(1.0, self._save_unsaved)
            return
        self._unsaved.pop(run.task_id, None)

    def _save_unsaved(self) -> None:
        self._retry = None
        for run in list(self._unsaved.values()):
            self._save(run)

    def _persist(self, event: Event) -> None:
        run = self.tasks.get(event.task_id)
        if run is None:  # every version is made while the task is in self.tasks
            log.error("task %s: version %d not stored: no such task", event.task_id, event.version)
            return
        self._save(run)

    # -- queries and stop --------------------------------------------------------------------
    def holds(self, task_id: str) -> bool:
        """The engine still has this task: running, or with a write the store refused (the
        retention sweep must not forget a task whose STOPPED version is not stored yet)."""
        return task_id in self.tasks or task_id in self._unsaved

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        live = self.tasks.get(task_id) or self._unsaved.get(task_id)
        if live is not None:
            return live.task
        found = self.store.get_task(task_id)
        return found[0] if found else None

    def stop_task(self, task_id: str, reason: str | None, stop_code: str) -> dict[str, Any] | None:
        live = self.tasks.get(task_id)
        if live is None:
            return self.get_task(task_id)
        live.request_stop(stop_code, reason or reasons.TASK_STOPPED_BY_USER)
        if task_id in self._unsaved and self._unsaved_error is not None:
            raise self._unsaved_error  # the task stops all the same; the API says what failed
        return live.task

    # -- restart and shutdown ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark tasks a previous daemon left unfinished as STOPPED; kill leftovers."""
        recovered = []
        now = self.clock.time()
        for task, runtime in list(self.store.list_tasks(not_stopped=True)):
            for name, record in runtime.items():
                # The backend kills only what still matches the record's identity (boot,
                # start time, PID namespace, cgroup): never a process that reused a pid.
                if self.backend.reap(record):
                    log.info(
                        "killed what was left of container %s of task %s", name, task["taskArn"]
                    )
            task["desiredStatus"] = "STOPPED"
            task["lastStatus"] = "STOPPED"
            task.setdefault("stoppingAt", now)
            task["stoppedAt"] = now
            task["executionStoppedAt"] = task.get("executionStoppedAt") or now
            # A stop asked for before the crash (StopTask's reason) is why the task stopped.
            task.setdefault("stoppedReason", reasons.DAEMON_RESTARTED)
            for c in task["containers"]:
                if c["lastStatus"] != "STOPPED":
                    c["lastStatus"] = "STOPPED"
                    c.setdefault("reason", reasons.DAEMON_RESTARTED)
            task["version"] = task.get("version", 0) + 1
            task_id = task["taskArn"].rsplit("/", 1)[-1]
            self.store.put_task(task_id, task, {})
            self.timewarps.remove(task_id)
            recovered.append(task_id)
        return recovered

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop every running task (stop signal, then SIGKILL after at most ``grace`` s)."""
        runs = list(self.tasks.values())
        for run in runs:
            run.default_stop_timeout = min(run.default_stop_timeout, grace)
            for c in run.containers.values():
                if "stopTimeout" in c.definition:
                    c.definition["stopTimeout"] = min(c.definition["stopTimeout"], grace)
            run.request_stop(reasons.USER_INITIATED_CODE, reasons.DAEMON_SHUTDOWN)
        jobs = [r.job for r in runs if r.job is not None]
        if jobs:
            await asyncio.wait(jobs, timeout=grace + 5)
        self.logs.flush()
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._save_unsaved()
        self.events.close()
