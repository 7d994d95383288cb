"""One running task: its containers' lifecycle, dependency ordering, health, and stop.

A :class:`TaskRun` owns the task's state (:class:`ecslocal.runtime.model.TaskState`, frozen:
each change is a new one, made here and only here) and one :class:`ContainerRun` per
container. Each container has a coroutine that waits for its ``dependsOn`` conditions, starts
it through the backend and waits for it to exit. The task's own coroutine moves the task
through PROVISIONING -> PENDING -> RUNNING, and, once a stop is asked for (StopTask, an
essential container exiting, a start failure), through STOPPING -> DEPROVISIONING -> STOPPED,
stopping containers in reverse dependency order.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ecslocal import arns
from ecslocal.clock import Clock
from ecslocal.runtime import reasons
from ecslocal.runtime.backends.base import (
    Backend,
    CannotStartContainer,
    ContainerHandle,
    ContainerSpec,
    SandboxUnavailable,
    TaskSandbox,
)
from ecslocal.runtime.events import EventBus, TaskEvents
from ecslocal.runtime.health import HEALTHY, UNHEALTHY, UNKNOWN, HealthMonitor
from ecslocal.runtime.images import ImageSource, PullFailed, cannot_pull_reason
from ecslocal.runtime.logs import LogRouter, awslogs_destination
from ecslocal.runtime.model import PENDING, RUNNING, STOPPED, ContainerState, TaskState


class DependencyFailed(Exception):
    """A dependsOn condition can never be met; the message is the container reason."""


class StopRequested(Exception):
    """The task is stopping before this container's dependencies were met."""


class ContainerRun:
    def __init__(self, definition: Mapping[str, Any], state: ContainerState) -> None:
        #: The container definition (with the RunTask overrides of memory and cpu), frozen.
        self.definition = definition
        #: The container's current state; the TaskRun replaces it (``_set_container``).
        self.state = state
        self.name: str = definition["name"]
        self.essential: bool = definition.get("essential", True)
        self.handle: ContainerHandle | None = None
        self.health: HealthMonitor | None = None
        self.started_at: float | None = None  # monotonic, for dependsOn startTimeout
        self.start_job: asyncio.Task[None] | None = None
        #: Set once the container has started, failed to start, or will never start.
        self.start_resolved = asyncio.Event()
        self.runtime_id = ""
        self.health_job: asyncio.Task[None] | None = None
        self.env: dict[str, str] = {}
        self.argv: list[str] = []
        #: This container's task metadata endpoint id.
        self.metadata_id = ""

    @property
    def status(self) -> str:
        return self.state.last_status

    @property
    def has_started(self) -> bool:
        return self.handle is not None


class TaskRun:
    def __init__(
        self,
        state: TaskState,
        definition: Mapping[str, Any],
        containers: list[ContainerRun],
        *,
        backend: Backend,
        clock: Clock,
        logs: LogRouter,
        events: EventBus,
        default_stop_timeout: float,
        task_clock: Clock | None = None,
        images: ImageSource | None = None,
        account: str = "",
        region: str = "",
    ) -> None:
        self.state = state
        self.definition = definition
        self.containers = {c.name: c for c in containers}
        self.backend = backend
        self.clock = clock
        #: The clock the task's processes read: ``clock``, or a warped one (ecslocal:time-warp).
        #: Lifetimes the task is told of (credentials, protection) run on it; the runtime's own
        #: timers (health checks, timeouts) stay on ``clock``, since they bound real work.
        self.task_clock = task_clock or clock
        self.logs = logs
        #: Each version of the task's state becomes events (runtime/events.py); the store
        #: writer is the bus's first subscriber.
        self._events = TaskEvents(events)
        self.default_stop_timeout = default_stop_timeout
        #: At most this many seconds of stop timeout (the daemon's shutdown grace), or None.
        self.stop_timeout_cap: float | None = None
        self.task_id: str = state.task_id
        self._changed = asyncio.Condition()
        self._stop_requested = asyncio.Event()
        self.done = asyncio.Event()
        self.job: asyncio.Task[None] | None = None
        #: What the task's containers share (the backend's), from before the first starts
        #: until after the last stopped.
        self.sandbox: TaskSandbox | None = None
        #: Where ECR images are pulled from (runtime/images.py), in the task's account and
        #: region; None: every image is the backend's business.
        self.images = images
        self.account, self.region = account, region

    # -- state ------------------------------------------------------------------------------
    def save(self) -> None:
        """A new version of the task: published, and so stored, before anything else runs."""
        self.state = replace(self.state, version=self.state.version + 1)
        self._events.publish(self.state, self.clock.time())

    def _set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def _set_container(self, c: ContainerRun, **changes: Any) -> None:
        c.state = replace(c.state, **changes)
        self.state = self.state.with_container(c.state)

    def set_protection(self, until: float | None) -> None:
        """Task scale-in protection until ``until`` (the task's clock), or none. Not a state
        change of the task's life: no new version."""
        self._set(protected_until=until)

    def recovery_records(self) -> dict[str, Any]:
        return {name: c.handle.recovery_record() for name, c in self.containers.items() if c.handle}

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def _wait_change(self, timeout: float | None) -> None:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def _set_task_status(self, status: str, **changes: Any) -> None:
        self._set(last_status=status, **changes)
        self.save()

    def _update_health(self) -> None:
        statuses = [
            c.state.health_status
            for c in self.containers.values()
            if c.essential and c.health is not None
        ]
        if not statuses:
            health = UNKNOWN
        elif UNHEALTHY in statuses:
            health = UNHEALTHY
        elif UNKNOWN in statuses:
            health = UNKNOWN
        else:
            health = HEALTHY
        self._set(health_status=health)

    # -- stop -------------------------------------------------------------------------------
    def request_stop(self, stop_code: str, reason: str) -> None:
        """Ask the task to stop; the first request's code and reason are the ones reported."""
        if self._stop_requested.is_set():
            return
        self._set(
            desired_status=STOPPED,
            stop_code=stop_code,
            stopped_reason=reason,
            stopping_at=self.clock.time(),
        )
        self._stop_requested.set()
        self.save()
        self._notify()

    # -- the task's life --------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self.sandbox is not None:
                self.sandbox.close()
            self.done.set()

    async def _run(self) -> None:
        try:
            self.sandbox = self.backend.create_sandbox(self.task_id)
        except SandboxUnavailable as exc:
            for c in self.containers.values():
                self._set_container(c, last_status=STOPPED, reason=str(exc)[:1024])
                c.start_resolved.set()
            self.request_stop(reasons.TASK_FAILED_TO_START_CODE, str(exc)[:255])
            await self._stop_containers()
            return
        if not await self._pull_images():
            for c in self.containers.values():
                c.start_resolved.set()
            await self._stop_containers()
            return
        for c in self.containers.values():
            if c.status == STOPPED:  # a non-essential container whose image did not pull
                c.start_resolved.set()
                continue
            c.start_job = asyncio.get_running_loop().create_task(self._run_container(c))
        while not self._stop_requested.is_set():
            if self.state.last_status == PENDING and all(
                c.has_started or c.status == STOPPED for c in self.containers.values()
            ):
                now = self.clock.time()
                self._set_task_status(
                    RUNNING, started_at=now, connectivity="CONNECTED", connectivity_at=now
                )
            await self._wait_change(None)
        await self._stop_containers()

    async def _pull_images(self) -> bool:
        """The agent's pull stage, before any container is created (images-networking-exec.md
        §3.1-3.2); False when an essential container's image could not be pulled (the task
        is then stopping: TaskFailedToStart, no container started).

        ECR images (:attr:`images` claims them) resolve tag -> digest and count as pulls, as
        does an image the backend reports it fetched (``RunnableImage.pulled``):
        ``pullStartedAt`` is the first pull's start (set once), ``pullStoppedAt`` the end of
        the last one, and an ECR container reports its ``imageDigest`` — one new version per
        pull (its ContainerStateChanged is the "pulled" event). A host command pulls nothing
        and counts for neither; a task with no pull at all keeps ecslocal's earlier rule that
        its pull starts and ends at once when it goes PENDING (Fargate pulls every task's
        images: its tasks always carry both timestamps)."""
        entered = self.clock.time()
        self._set(last_status=PENDING)
        for c in self.containers.values():
            image = c.definition["image"]
            began = self.clock.time()
            claimed = self.images is not None and self.images.claims(image)
            try:
                pulled = (
                    self.images.pull(image, self.account, self.region)
                    if self.images is not None and claimed
                    else None
                )
            except PullFailed as failure:
                reason = cannot_pull_reason(failure, self.state.launch_type)
                self._set(
                    pull_started_at=self.state.pull_started_at or began,
                    pull_stopped_at=self.clock.time(),
                )
                self._set_container(c, last_status=STOPPED, reason=reason[:1024])
                if not c.essential:
                    self.save()
                    continue
                self._set(stopped_by_container=self.state.stopped_by_container or c.name)
                self.save()
                self.request_stop(reasons.TASK_FAILED_TO_START_CODE, reason[:255])
                return False
            runnable = await self.backend.resolve_image(image)
            if pulled is None and not runnable.pulled:
                continue
            self._set(
                pull_started_at=self.state.pull_started_at or began,
                pull_stopped_at=self.clock.time(),
            )
            if pulled is not None:
                self._set_container(c, image_digest=pulled.digest, image_id=pulled.image_id)
            self.save()
        if self.state.pull_started_at is None:
            self._set(pull_started_at=entered, pull_stopped_at=entered)
            self.save()
        return True

    async def _run_container(self, c: ContainerRun) -> None:
        try:
            await self._start_container(c)
        finally:
            c.start_resolved.set()
            self._notify()
        if c.handle is not None:
            await self._watch_container(c, c.handle)

    async def _start_container(self, c: ContainerRun) -> None:
        try:
            await self._wait_dependencies(c)
        except DependencyFailed as exc:
            self._set_container(c, last_status=STOPPED, reason=str(exc)[:1024])
            self.save()
            self.request_stop(reasons.TASK_FAILED_TO_START_CODE, str(exc)[:255])
            return
        except StopRequested:
            return
        group, stream = awslogs_destination(c.definition, self.task_id, c.runtime_id)
        spec = ContainerSpec(
            task_id=self.task_id,
            runtime_id=c.runtime_id,
            name=c.name,
            image=c.definition["image"],
            argv=c.argv,
            env=c.env,
            working_dir=c.definition.get("workingDirectory"),
            memory_mib=c.definition.get("memory"),
            task_memory_mib=int(self.state.memory) if self.state.memory else None,
            on_log=self._log_callback(c, group, stream),
            sandbox=self.sandbox,
        )
        try:
            handle = await self.backend.start(spec)
        except CannotStartContainer as exc:
            self._set_container(c, last_status=STOPPED, reason=str(exc)[:1024])
            self._set(stopped_by_container=self.state.stopped_by_container or c.name)
            self.save()
            self.request_stop(reasons.TASK_FAILED_TO_START_CODE, str(exc)[:255])
            return
        c.handle = handle
        c.started_at = self.clock.monotonic()
        self._set_container(
            c, runtime_id=handle.runtime_id, last_status=RUNNING, started_at=self.clock.time()
        )
        health_check = c.definition.get("healthCheck")
        if health_check:
            self._set_container(c, health_status=UNKNOWN)
            c.health = HealthMonitor(health_check, handle, self.clock, self._on_health(c))
            c.health_job = asyncio.get_running_loop().create_task(c.health.run())
        self._update_health()
        self.save()

    async def _watch_container(self, c: ContainerRun, handle: ContainerHandle) -> None:
        status = await handle.wait()
        if c.health_job is not None:
            c.health_job.cancel()
        self._set_container(
            c,
            last_status=STOPPED,
            exit_code=status.exit_code,
            finished_at=self.clock.time(),
            **({"reason": reasons.OUT_OF_MEMORY} if status.oom_killed else {}),
        )
        if c.essential and not self._stop_requested.is_set():
            self._set(stopped_by_container=c.name)  # ecslocal's own: `ecslocal run`'s exit code
            self.request_stop(reasons.ESSENTIAL_EXITED_CODE, reasons.ESSENTIAL_EXITED)
        self.save()
        self._notify()

    def _log_callback(
        self, c: ContainerRun, group: str | None, stream: str | None
    ) -> Callable[[str, int, str], None]:
        def on_log(source: str, timestamp_ms: int, line: str) -> None:
            self.logs.append(self.task_id, c.name, source, group, stream, timestamp_ms, line)

        return on_log

    def _on_health(self, c: ContainerRun) -> Callable[[str], None]:
        def on_change(status: str) -> None:
            self._set_container(c, health_status=status)
            self._update_health()
            self.save()
            self._notify()

        return on_change

    # -- dependsOn --------------------------------------------------------------------------
    async def _wait_dependencies(self, c: ContainerRun) -> None:
        deps = c.definition.get("dependsOn") or []
        while deps:
            if self._stop_requested.is_set():
                raise StopRequested
            deadline: float | None = None
            pending = []
            for dep in deps:
                target = self.containers[dep["containerName"]]
                met, wait_until = self._condition_met(target, dep["condition"], c.name)
                if not met:
                    pending.append(dep)
                    if wait_until is not None:
                        deadline = wait_until if deadline is None else min(deadline, wait_until)
            if not pending:
                return
            deps = pending
            timeout = None
            if deadline is not None:
                timeout = max(0.0, self.clock.real_seconds(deadline - self.clock.monotonic()))
            await self._wait_change(timeout)

    def _condition_met(
        self, dep: ContainerRun, condition: str, target: str
    ) -> tuple[bool, float | None]:
        """(met, monotonic deadline of the dependency's startTimeout or None).

        Raises :class:`DependencyFailed` when the condition can never be met."""
        if condition == "START":
            if dep.has_started:
                return True, None
            if dep.status == STOPPED:
                raise DependencyFailed(reasons.dependency_never_starts(dep.name, target))
            return False, None
        if dep.status == STOPPED and not dep.has_started:
            raise DependencyFailed(reasons.dependency_never_starts(dep.name, target))
        if condition == "COMPLETE" and dep.status == STOPPED:
            return True, None
        if condition == "SUCCESS" and dep.status == STOPPED:
            if dep.state.exit_code == 0:
                return True, None
            raise DependencyFailed(reasons.dependency_failed(dep.name, target))
        if condition == "HEALTHY":
            if dep.state.health_status == HEALTHY:
                return True, None
            if dep.status == STOPPED:
                raise DependencyFailed(reasons.dependency_never_starts(dep.name, target))
        start_timeout = dep.definition.get("startTimeout")
        if start_timeout is None or dep.started_at is None:
            return False, None
        deadline = dep.started_at + float(start_timeout)
        if self.clock.monotonic() >= deadline:
            raise DependencyFailed(reasons.dependency_timed_out(dep.name, target))
        return False, deadline

    # -- stopping ---------------------------------------------------------------------------
    async def _stop_containers(self) -> None:
        self._set_task_status("STOPPING")
        await asyncio.gather(*(self._stop_container(c) for c in self.containers.values()))
        self._set_task_status("DEPROVISIONING", execution_stopped_at=self.clock.time())
        self.logs.flush()
        self._set_task_status(STOPPED, stopped_at=self.clock.time())

    def _dependents(self, name: str) -> list[ContainerRun]:
        return [
            c
            for c in self.containers.values()
            if any(d["containerName"] == name for d in c.definition.get("dependsOn") or [])
        ]

    async def _stop_container(self, c: ContainerRun) -> None:
        # Reverse dependency order: wait for every container that depends on this one.
        while any(
            not d.start_resolved.is_set() or (d.handle is not None and d.status != STOPPED)
            for d in self._dependents(c.name)
        ):
            await self._wait_change(None)
        await c.start_resolved.wait()
        if c.handle is None:
            if c.status != STOPPED:
                self._set_container(c, last_status=STOPPED)
                self.save()
                self._notify()
            return
        if c.status != STOPPED:
            timeout = float(c.definition.get("stopTimeout", self.default_stop_timeout))
            if self.stop_timeout_cap is not None:
                timeout = min(timeout, self.stop_timeout_cap)
            c.handle.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(c.handle.wait(), self.clock.real_seconds(timeout))
            except TimeoutError:
                c.handle.kill()
        if c.start_job is not None:
            await c.start_job  # records the exit code and reason
        self._notify()


def new_container_state(
    definition: Mapping[str, Any], task_arn: str, cluster_name: str, region: str, account: str
) -> ContainerState:
    task_id = task_arn.rsplit("/", 1)[-1]
    memory, reservation = definition.get("memory"), definition.get("memoryReservation")
    return ContainerState(
        container_arn=arns.build(
            "ecs", region, account, f"container/{cluster_name}/{task_id}/{uuid.uuid4()}"
        ),
        task_arn=task_arn,
        name=definition["name"],
        image=definition["image"],
        cpu=str(definition.get("cpu", 0)),
        memory=str(memory) if memory is not None else None,
        memory_reservation=str(reservation) if reservation is not None else None,
    )
