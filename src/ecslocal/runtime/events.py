"""What the engine says happened: typed task and container state events, and the in-process bus
that carries them to their subscribers (persistence, the event stream of the local API; next,
the service scheduler and the load balancer).

Names follow ECS's own state-change vocabulary: an EventBridge "ECS Task State Change" event's
``detail`` is the task (``lastStatus``, ``desiredStatus``, ``stopCode``, ``stoppedReason``,
``version``, ``updatedAt`` and the timestamps ``createdAt``, ``pullStartedAt``,
``pullStoppedAt``, ``startedAt``, ``stoppingAt``, ``executionStoppedAt``, ``stoppedAt``) with its
``containers`` (``name``, ``runtimeId``, ``lastStatus``, ``exitCode``, ``reason``)
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html). ECS sends
one such event whenever the task *or one of its containers* changes state, and its ``version``
"is incremented each time the resource changes state"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_cwe_events.html). So here:
every new version of the task's state is one :class:`TaskStateChanged` (the event persistence
stores), followed by one event for each container state, container health or task health that
changed in that version, carrying the same ``version``. ECS's events carry no health ("The
health of the task is not provided in the task state change event", ecs_task_events.html):
:class:`ContainerHealthChanged` and :class:`TaskHealthChanged` are ecslocal's own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, ClassVar

from ecslocal.runtime.model import TaskState
from ecslocal.timefmt import iso8601_ms

log = logging.getLogger("ecslocal.events")

#: A task's statuses in the order ECS moves it through them
#: (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html).
TASK_LIFECYCLE = (
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
)


def iso_timestamp(epoch: float) -> str:
    """An event's timestamps as ECS's events give them: ISO 8601 strings, UTC, milliseconds."""
    return iso8601_ms(epoch)


@cache
def _camel(name: str) -> str:
    """ECS's camelCase for a field name (memoised: a handful of names, asked for each event;
    spelling them out again was a tenth of a RunTask's CPU)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineEvent:
    """Common to every event: which task, and the task version it belongs to."""

    TYPE: ClassVar[str] = "EngineEvent"
    #: Fields that are epoch seconds, rendered as ISO strings on the wire.
    TIMES: ClassVar[frozenset[str]] = frozenset()

    task_id: str
    task_arn: str
    cluster_arn: str
    version: int
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        """The event as the local API streams it: ``type`` plus ECS's camelCase names, with
        fields that are not set left out (as ECS leaves them out)."""
        out: dict[str, Any] = {"type": self.TYPE}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "updated_at" or f.name in self.TIMES:
                value = iso_timestamp(value)
            out[_camel(f.name)] = value
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskStateChanged(EngineEvent):
    """A new version of the task: created (PROVISIONING), pulled (``pull_stopped_at`` set),
    PENDING, RUNNING, stop requested (``desired_status`` STOPPED with ``stop_code`` and
    ``stopped_reason``), STOPPING, DEPROVISIONING, STOPPED — or a container's change."""

    TYPE: ClassVar[str] = "TaskStateChanged"
    TIMES: ClassVar[frozenset[str]] = frozenset(
        {
            "created_at",
            "pull_started_at",
            "pull_stopped_at",
            "started_at",
            "stopping_at",
            "execution_stopped_at",
            "stopped_at",
        }
    )

    last_status: str
    desired_status: str
    task_definition_arn: str
    group: str | None = None
    started_by: str | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    created_at: float | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerStateChanged(EngineEvent):
    """A container was created (PENDING), its image pulled (still PENDING, ``image_digest``
    set: ECS's task state change events carry each container's ``imageDigest``), started
    (RUNNING, with its ``runtime_id``) or stopped (STOPPED, with ``exit_code`` once it ran and
    ``reason`` when ECS would give one)."""

    TYPE: ClassVar[str] = "ContainerStateChanged"

    name: str
    container_arn: str
    last_status: str
    runtime_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    image_digest: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerHealthChanged(EngineEvent):
    """A container's health check result changed (UNKNOWN, HEALTHY, UNHEALTHY)."""

    TYPE: ClassVar[str] = "ContainerHealthChanged"

    name: str
    health_status: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskHealthChanged(EngineEvent):
    """The task's health (its essential containers' health combined) changed."""

    TYPE: ClassVar[str] = "TaskHealthChanged"

    health_status: str


Event = TaskStateChanged | ContainerStateChanged | ContainerHealthChanged | TaskHealthChanged
Callback = Callable[[Event], None]


@dataclass(frozen=True)
class _Subscriber:
    callback: Callback
    types: tuple[type[EngineEvent], ...]
    critical: bool


class EventQueue:
    """An async subscriber's bounded buffer of events.

    The overflow rule: when ``maxsize`` events are waiting and another comes, the subscription
    ends — :meth:`get` hands out the events already buffered, then None, and ``overflowed`` is
    True. A slow reader never blocks the engine and never sees a silent gap in the middle of
    its stream: it learns that it fell behind and can read the task's state again (as a watch
    that falls behind is ended in Kubernetes and Nomad rather than skipped)."""

    def __init__(self, maxsize: int, task_id: str | None) -> None:
        self.maxsize = maxsize
        self.task_id = task_id
        self.overflowed = False
        self.closed = False
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()

    def put(self, event: Event) -> None:
        if self.closed or (self.task_id is not None and event.task_id != self.task_id):
            return
        if len(self._events) >= self.maxsize:
            self.overflowed = True
            self.close()
            return
        self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None once the subscription has ended (closed or overflowed).
        Raises TimeoutError when nothing came within ``timeout`` seconds."""
        while not self._events:
            if self.closed:
                return None
            self._ready.clear()
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._events.popleft()


class EventBus:
    """In-process publish/subscribe, on the daemon's event loop.

    Callbacks run synchronously inside :meth:`publish`, in the order they subscribed, before
    any queue is fed: the Agent subscribes its store writer first, so a state change is stored
    before anything else sees it. A callback's exception is logged and the others still run,
    except for a ``critical`` one (the store writer), whose failure the engine must see as it
    did when it called the store itself: it propagates to the publisher. Async subscribers
    take an :class:`EventQueue` (see its overflow rule)."""

    #: Events an async subscriber may fall behind by before its subscription ends.
    DEFAULT_QUEUE_SIZE = 1024

    def __init__(self) -> None:
        # Replaced, never mutated, so a callback may (un)subscribe while publish iterates.
        self._subscribers: tuple[_Subscriber, ...] = ()
        self._queues: tuple[EventQueue, ...] = ()

    def subscribe(
        self,
        callback: Callback,
        types: Iterable[type[EngineEvent]] = (),
        *,
        critical: bool = False,
    ) -> Callback:
        """Call ``callback(event)`` for every event (of ``types``, when given); returns the
        callback, to give to :meth:`unsubscribe`."""
        self._subscribers += (_Subscriber(callback, tuple(types), critical),)
        return callback

    def unsubscribe(self, subscription: Callback | EventQueue) -> None:
        if isinstance(subscription, EventQueue):
            self._queues = tuple(q for q in self._queues if q is not subscription)
            subscription.close()
        else:
            self._subscribers = tuple(
                s for s in self._subscribers if s.callback is not subscription
            )

    def queue(self, task_id: str | None = None, maxsize: int = DEFAULT_QUEUE_SIZE) -> EventQueue:
        """A new async subscription to every event (of one task, when ``task_id`` is given)."""
        q = EventQueue(maxsize, task_id)
        self._queues += (q,)
        return q

    def publish(self, event: Event) -> None:
        for s in self._subscribers:
            if s.types and not isinstance(event, s.types):
                continue
            if s.critical:
                s.callback(event)
                continue
            try:
                s.callback(event)
            except Exception:  # a subscriber's bug never breaks the engine
                log.exception("event subscriber %r failed on %s", s.callback, event.TYPE)
        for q in self._queues:
            q.put(event)
            if q.closed:
                self.unsubscribe(q)

    def close(self) -> None:
        """End every async subscription (the daemon is stopping)."""
        for q in self._queues:
            q.close()
        self._queues = ()


class EventHistory:
    """The recent events of each task, so that a reader who subscribes after a task started
    still sees its whole life: at most ``per_task`` events (the oldest go first) for the
    ``tasks`` most recently created tasks."""

    def __init__(self, bus: EventBus, tasks: int = 1000, per_task: int = 512) -> None:
        self._tasks: OrderedDict[str, deque[Event]] = OrderedDict()
        self._max_tasks = tasks
        self._per_task = per_task
        bus.subscribe(self._record)

    def _record(self, event: Event) -> None:
        events = self._tasks.get(event.task_id)
        if events is None:
            events = self._tasks[event.task_id] = deque(maxlen=self._per_task)
            while len(self._tasks) > self._max_tasks:
                self._tasks.popitem(last=False)
        events.append(event)

    def of(self, task_id: str) -> list[Event]:
        return list(self._tasks.get(task_id, ()))


class TaskEvents:
    """Turns the successive versions of one task's state into events (see the module
    docstring): called by the task at each version it makes."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._containers: dict[str, tuple[Any, ...]] = {}
        self._health: dict[str, str] = {}
        self._task_health: str | None = None

    def publish(self, task: TaskState, now: float) -> None:
        common: dict[str, Any] = {
            "task_id": task.task_id,
            "task_arn": task.task_arn,
            "cluster_arn": task.cluster_arn,
            "version": task.version,
            "updated_at": now,
        }
        self.bus.publish(
            TaskStateChanged(
                **common,
                last_status=task.last_status,
                desired_status=task.desired_status,
                task_definition_arn=task.task_definition_arn,
                **{
                    f: getattr(task, f)
                    for f in ("group", "started_by", "stop_code", "stopped_reason")
                },
                **{f: getattr(task, f) for f in TaskStateChanged.TIMES},
            )
        )
        for c in task.containers:
            state = (c.last_status, c.runtime_id, c.exit_code, c.reason, c.image_digest)
            if self._containers.get(c.name) != state:
                self._containers[c.name] = state
                self.bus.publish(
                    ContainerStateChanged(
                        **common,
                        name=c.name,
                        container_arn=c.container_arn,
                        last_status=state[0],
                        runtime_id=state[1],
                        exit_code=state[2],
                        reason=state[3],
                        image_digest=state[4],
                    )
                )
            if self._health.setdefault(c.name, c.health_status) != c.health_status:
                self._health[c.name] = c.health_status
                self.bus.publish(
                    ContainerHealthChanged(**common, name=c.name, health_status=c.health_status)
                )
        if self._task_health is None:
            self._task_health = task.health_status
        elif self._task_health != task.health_status:
            self._task_health = task.health_status
            self.bus.publish(TaskHealthChanged(**common, health_status=task.health_status))
