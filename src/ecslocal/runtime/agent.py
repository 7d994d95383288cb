"""The agent: runs the tasks it is given (:class:`ecslocal.runtime.plan.TaskPlan`), keeps their
state (:mod:`ecslocal.runtime.model`) in the store, recovers after a restart. The API layer
(RunTask, StopTask, DescribeTasks, tags) talks to this class only, and the container-facing
endpoints see it through :class:`ecslocal.runtime.view.TaskView`."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ecslocal import arns
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.runtime import reasons
from ecslocal.runtime.backends.base import Backend
from ecslocal.runtime.endpoints import TaskAccess, TaskEndpoints
from ecslocal.runtime.events import Event, EventBus, TaskStateChanged
from ecslocal.runtime.images import ImageSource
from ecslocal.runtime.logs import LogRouter, awslogs_destination
from ecslocal.runtime.model import STOPPED, TaskState, freeze
from ecslocal.runtime.plan import StartRefused, TaskPlan
from ecslocal.runtime.task import ContainerRun, TaskRun, new_container_state
from ecslocal.runtime.timewarp import TimeWarp, TimeWarps, TimeWarpUnavailable
from ecslocal.runtime.view import ContainerSnapshot, EngineView, TaskSnapshot, TaskView
from ecslocal.storage.db import StorageError
from ecslocal.store import Store

log = logging.getLogger("ecslocal.agent")


def with_time_warp(env: dict[str, str], warp: TimeWarp) -> None:
    """Give a container's processes the task's warped clock; libfaketime goes first in an
    LD_PRELOAD the container sets itself."""
    for key, value in warp.env.items():
        if key == "LD_PRELOAD" and env.get(key):
            value = f"{value}:{env[key]}"
        env[key] = value


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
        self._metadata_ids: dict[str, tuple[str, str]] = {}
        self.timewarps = TimeWarps()
        #: Set by the daemon: the registry ECR images are pulled from (runtime/images.py);
        #: None: every image is the backend's business.
        self.images: ImageSource | None = None
        #: What the engine says happened (runtime/events.py). The store writer subscribes
        #: first, synchronously: a task's new version is stored before anyone else sees it.
        self.events = EventBus()
        self.events.subscribe(self._persist, [TaskStateChanged], critical=True)

    # -- start ------------------------------------------------------------------------------
    def start_task(self, plan: TaskPlan) -> TaskState:
        """Run ``plan``: the task is stored as PROVISIONING and starts after this returns (as
        RunTask answers at once). Raises :class:`StartRefused` (or the store's error) when it
        cannot; nothing of the task then stays behind."""
        cluster_name = plan.cluster_arn.rsplit("/", 1)[-1]
        task_id = secrets.token_hex(16)
        region, account = self.config.region, self.config.account_id
        task_arn = arns.build("ecs", region, account, f"task/{cluster_name}/{task_id}")
        now = self.clock.time()
        warp = self._time_warp(task_id, plan.time_warp, now)
        try:
            containers = self._containers(plan, task_arn, warp)
        except BaseException:
            self._release(task_id, [])  # nothing of a task that never started stays behind
            raise
        for warning in plan.diagnostics:
            log.warning("task %s: %s", task_id, warning)
        state = TaskState(
            task_arn=task_arn,
            cluster_arn=plan.cluster_arn,
            task_definition_arn=plan.definition["taskDefinitionArn"],
            overrides=plan.overrides,
            containers=tuple(c.state for c in containers),
            created_at=now,
            launch_type=plan.launch_type,
            capacity_provider_name=plan.capacity_provider_name,
            group=plan.group,
            started_by=plan.started_by or None,
            availability_zone=plan.availability_zone,
            tags=plan.tags,
            enable_execute_command=plan.enable_execute_command,
            cpu=plan.cpu,
            memory=plan.memory,
            platform_version=plan.platform_version,
            platform_family=plan.platform_family,
            ephemeral_storage=plan.ephemeral_storage,
            diagnostics=plan.diagnostics,
        )
        try:
            for c in containers:
                log_group, _ = awslogs_destination(c.definition, task_id, c.runtime_id)
                if log_group:
                    self.store.ensure_log_group(log_group, now)
        except StorageError:
            self._release(task_id, containers)
            raise
        run = TaskRun(
            state,
            plan.definition,
            containers,
            backend=self.backend,
            clock=self.clock,
            logs=self.logs,
            events=self.events,
            default_stop_timeout=self.config.default_stop_timeout,
            task_clock=warp.clock if warp is not None else None,
            images=self.images,
            account=account,
            region=region,
        )
        self.tasks[task_id] = run
        run.save()
        if task_id in self._unsaved:  # nothing started yet: RunTask fails, as a whole
            del self.tasks[task_id], self._unsaved[task_id]
            self._release(task_id, containers)
            assert self._unsaved_error is not None
            raise self._unsaved_error
        run.job = asyncio.get_running_loop().create_task(self._run(run))
        return run.state

    def _containers(
        self, plan: TaskPlan, task_arn: str, warp: TimeWarp | None
    ) -> list[ContainerRun]:
        """The task's containers, with the plan's environment and command plus what the
        engine owns: the task's endpoints and its clock."""
        _, _, _, region, account, resource = task_arn.split(":", 5)
        _, cluster_name, task_id = resource.split("/")
        injected, access = self._injected_env(task_arn, plan, warp)
        if plan.launch_type == "EC2" and self.endpoint_url is not None:
            # EC2-launch tasks can reach the instance's metadata service (Fargate's cannot).
            injected["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.imds_url or self.endpoint_url
        containers: list[ContainerRun] = []
        for cplan in plan.containers:
            state = new_container_state(cplan.definition, task_arn, cluster_name, region, account)
            c = ContainerRun(cplan.definition, state)
            c.runtime_id = f"{task_id}-{secrets.randbelow(10**10):010d}"
            c.env = dict(cplan.env)
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
                self._metadata_ids[c.metadata_id] = (task_id, c.name)
                c.env["ECS_CONTAINER_METADATA_URI_V4"] = f"{base}/v4/{c.metadata_id}"
                c.env["ECS_CONTAINER_METADATA_URI"] = f"{base}/v3/{c.metadata_id}"
                c.env["ECS_AGENT_URI"] = f"{base}/api/{c.metadata_id}"
            c.argv = list(cplan.argv)
            containers.append(c)
        return containers

    def _time_warp(self, task_id: str, speed: float | None, now: float) -> TimeWarp | None:
        """The task's clock, starting at its creation and running ``speed`` times faster,
        shared by its processes and ecslocal (``ecslocal:time-warp``)."""
        if speed is None:
            return None
        try:
            return self.timewarps.create(task_id, speed, origin=now)
        except TimeWarpUnavailable as exc:
            raise StartRefused(str(exc)) from None
        except OSError as exc:
            raise StartRefused(f"Tag ecslocal:time-warp: cannot set up the clock: {exc}.") from None

    def _injected_env(
        self, task_arn: str, plan: TaskPlan, warp: TimeWarp | None
    ) -> tuple[dict[str, str], TaskAccess | None]:
        """Variables every container of the task gets — where the AWS APIs are (ecslocal), the
        task's own STS endpoint and, with a task role, its credentials endpoint (FULL_URI +
        per-task token, lasting the plan's ``credential_ttl``) — and the task's endpoints."""
        env: dict[str, str] = {}
        if self.endpoint_url is None:
            return env, None
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.endpoints is None:
            return env, None
        clock = warp.clock if warp is not None else None
        access = self.endpoints.open(task_arn, plan.role_arn, plan.credential_ttl, clock)
        env.update(access.env)
        return env, access

    async def _run(self, run: TaskRun) -> None:
        try:
            await run.run()
        except Exception:  # never lose a task silently: record why it stopped
            log.exception("task %s failed", run.task_id)
            run.state = replace(
                run.state,
                stopped_reason="ecslocal internal error while running the task",
                last_status=STOPPED,
                desired_status=STOPPED,
                stopped_at=self.clock.time(),
            )
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
            self._metadata_ids.pop(c.metadata_id, None)
        for metadata_id in [k for k, v in self._metadata_ids.items() if v[0] == task_id]:
            del self._metadata_ids[metadata_id]  # a task that failed while being set up
        if self.endpoints is not None:
            self.endpoints.close(task_id)
        self.timewarps.close(task_id)

    def _save(self, run: TaskRun) -> None:
        """Write the task; a refused write never stops the engine (see ``_unsaved``)."""
        try:
            self.store.put_task(run.task_id, run.state.to_record(), run.recovery_records())
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

    def get_task(self, task_id: str) -> TaskState | None:
        live = self.tasks.get(task_id) or self._unsaved.get(task_id)
        if live is not None:
            return live.state
        found = self.store.get_task(task_id)
        return TaskState.from_record(found[0]) if found else None

    def is_running(self, task_id: str) -> bool:
        """The engine still runs this task (it will make more versions of it)."""
        return task_id in self.tasks

    def version_of(self, task_id: str) -> int | None:
        """The running task's current version (None when the engine no longer runs it)."""
        live = self.tasks.get(task_id)
        return live.state.version if live is not None else None

    def stop_task(self, task_id: str, reason: str | None, stop_code: str) -> TaskState | None:
        live = self.tasks.get(task_id)
        if live is None:
            return self.get_task(task_id)
        live.request_stop(stop_code, reason or reasons.TASK_STOPPED_BY_USER)
        if task_id in self._unsaved and self._unsaved_error is not None:
            raise self._unsaved_error  # the task stops all the same; the API says what failed
        return live.state

    def update_tags(self, task_id: str, tags: Iterable[Mapping[str, str]]) -> None:
        """The task's tags are now ``tags`` (TagResource, UntagResource): not a state change
        of the task's life, so no new version, but stored at once."""
        frozen = freeze(list(tags))
        live = self.tasks.get(task_id) or self._unsaved.get(task_id)
        if live is not None:
            live.state = replace(live.state, tags=frozen)
            self._save(live)
            return
        found = self.store.get_task(task_id)
        if found is not None:
            state = replace(TaskState.from_record(found[0]), tags=frozen)
            self.store.put_task(task_id, state.to_record(), found[1])

    # -- the endpoints' view (runtime/view.py) -----------------------------------------------
    def view(self) -> TaskView:
        """What the container-facing endpoints get of the engine: queries and one command."""
        return EngineView(self)

    def by_endpoint_id(self, endpoint_id: str) -> tuple[str, str] | None:
        found = self._metadata_ids.get(endpoint_id)
        return found if found is not None and found[0] in self.tasks else None

    def snapshot(self, task_id: str) -> TaskSnapshot | None:
        run = self.tasks.get(task_id)
        if run is None:
            return None
        return TaskSnapshot(
            state=run.state,
            definition=run.definition,
            containers=tuple(
                ContainerSnapshot(c.state, c.definition, c.health.report if c.health else None)
                for c in run.containers.values()
            ),
            clock=run.task_clock,
        )

    def container_usage(self, task_id: str, name: str) -> dict[str, Any] | None:
        run = self.tasks.get(task_id)
        c = run.containers.get(name) if run is not None else None
        if c is None or c.handle is None or c.status != "RUNNING":
            return None
        return c.handle.stats()

    def set_protection(self, task_id: str, until: float | None) -> TaskState | None:
        run = self.tasks.get(task_id)
        if run is None:
            return None
        run.set_protection(until)
        return run.state

    # -- restart and shutdown ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark tasks a previous daemon left unfinished as STOPPED; kill leftovers."""
        recovered = []
        now = self.clock.time()
        for record, runtime in list(self.store.list_tasks(not_stopped=True)):
            task = TaskState.from_record(record)
            for name, entry in runtime.items():
                # The backend kills only what still matches the record's identity (boot,
                # start time, PID namespace, cgroup): never a process that reused a pid.
                if self.backend.reap(entry):
                    log.info("killed what was left of container %s of task %s", name, task.task_arn)
            task = replace(
                task,
                desired_status=STOPPED,
                last_status=STOPPED,
                stopping_at=task.stopping_at or now,
                stopped_at=now,
                execution_stopped_at=task.execution_stopped_at or now,
                # A stop asked for before the crash (StopTask's reason) is why it stopped.
                stopped_reason=task.stopped_reason or reasons.DAEMON_RESTARTED,
                containers=tuple(
                    c
                    if c.last_status == STOPPED
                    else replace(
                        c, last_status=STOPPED, reason=c.reason or reasons.DAEMON_RESTARTED
                    )
                    for c in task.containers
                ),
                version=task.version + 1,
            )
            self.store.put_task(task.task_id, task.to_record(), {})
            self.timewarps.remove(task.task_id)
            recovered.append(task.task_id)
        return recovered

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop every running task (stop signal, then SIGKILL after at most ``grace`` s)."""
        runs = list(self.tasks.values())
        for run in runs:
            run.stop_timeout_cap = grace
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
