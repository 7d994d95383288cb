"""The tasks' summaries in memory: what ListTasks filters on, kept in ListTasks' order.

ListTasks used to read every task row of the cluster from SQLite, parse each document and
filter in Python, on every page: paging through N stopped tasks cost O(N^2) and blocked the
event loop (issue 9). The store now keeps one :class:`TaskSummary` per task, updated on every
``put_task``, and one sorted list of task keys per combination of the filters ListTasks
offers (cluster and desiredStatus always; family, startedBy, serviceName and launchType
each either given or not). A page is then a bisection and a slice: O(log N + page), whatever
the history holds.

Order: createdAt, then task id (ListTasks has always listed tasks by createdAt; the id breaks
ties so the order, and a ``nextToken``, are the same after a restart).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecslocal.errors import invalid_parameter

#: A task's place in ListTasks' order.
Key = tuple[float, str]
#: (cluster, desiredStatus, family, startedBy, serviceName, launchType); None: not filtered.
BucketKey = tuple[str, str, str | None, str | None, str | None, str | None]

STOPPED = "STOPPED"
#: A service's tasks are in the group "service:<name>" (ECS API reference, Task.group).
SERVICE_GROUP_PREFIX = "service:"


@dataclass(slots=True)
class TaskSummary:
    task_id: str
    arn: str
    cluster: str
    family: str
    started_by: str | None
    desired_status: str
    last_status: str
    launch_type: str | None
    service_name: str | None
    created_at: float
    #: When the task reached STOPPED (its ``stoppedAt``), for the retention sweep.
    stopped_at: float | None

    @property
    def key(self) -> Key:
        return (self.created_at, self.task_id)

    def filters(self) -> tuple[Any, ...]:
        return (
            self.cluster,
            self.desired_status,
            self.family,
            self.started_by,
            self.service_name,
            self.launch_type,
        )

    def buckets(self) -> list[BucketKey]:
        """Every filter combination this task answers: each optional filter either absent or
        equal to the task's value (a task without a startedBy matches no startedBy filter)."""
        options = [
            (None,) if value is None else (None, value)
            for value in (self.family, self.started_by, self.service_name, self.launch_type)
        ]
        return [
            (self.cluster, self.desired_status, *combo)  # type: ignore[misc]
            for combo in itertools.product(*options)
        ]


def summary_of(task_id: str, body: dict[str, Any]) -> TaskSummary:
    """The summary of a task document (the DescribeTasks ``Task`` shape)."""
    group = body.get("group") or ""
    stopped_at = None
    if body.get("lastStatus") == STOPPED:
        stopped_at = body.get("stoppedAt") or body["createdAt"]
    return TaskSummary(
        task_id=task_id,
        arn=body["taskArn"],
        cluster=body["clusterArn"].rsplit("/", 1)[-1],
        family=body["taskDefinitionArn"].rsplit("/", 1)[-1].split(":")[0],
        started_by=body.get("startedBy"),
        desired_status=body["desiredStatus"],
        last_status=body["lastStatus"],
        launch_type=body.get("launchType"),
        service_name=group[len(SERVICE_GROUP_PREFIX) :]
        if group.startswith(SERVICE_GROUP_PREFIX)
        else None,
        created_at=float(body["createdAt"]),
        stopped_at=float(stopped_at) if stopped_at is not None else None,
    )


def encode_token(key: Key) -> str:
    """ListTasks' opaque ``nextToken``: the last key of the page."""
    return base64.urlsafe_b64encode(f"{key[0]!r} {key[1]}".encode()).decode()


def decode_token(token: str) -> Key:
    try:
        created, sep, task_id = base64.urlsafe_b64decode(token.encode()).decode().partition(" ")
        key = (float(created), task_id)
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid_parameter("Invalid nextToken.") from None
    if not sep or not task_id:
        raise invalid_parameter("Invalid nextToken.")
    return key


class TaskIndex:
    def __init__(self) -> None:
        self._tasks: dict[str, TaskSummary] = {}
        self._buckets: dict[BucketKey, list[Key]] = {}
        #: (stoppedAt, task id) of stopped tasks; stale entries are skipped when popped.
        self._stopped: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, task_id: str) -> TaskSummary | None:
        return self._tasks.get(task_id)

    def put(self, summary: TaskSummary) -> None:
        old = self._tasks.get(summary.task_id)
        self._tasks[summary.task_id] = summary
        if old is None or old.filters() != summary.filters() or old.key != summary.key:
            if old is not None:
                self._unlink(old)
            key = summary.key
            for bucket in summary.buckets():
                keys = self._buckets.setdefault(bucket, [])
                if not keys or keys[-1] < key:
                    keys.append(key)  # the usual case: the newest task
                else:
                    insort(keys, key)
        if summary.stopped_at is not None and (old is None or old.stopped_at is None):
            heapq.heappush(self._stopped, (summary.stopped_at, summary.task_id))

    def remove(self, task_id: str) -> None:
        old = self._tasks.pop(task_id, None)
        if old is not None:
            self._unlink(old)

    def _unlink(self, summary: TaskSummary) -> None:
        key = summary.key
        for bucket in summary.buckets():
            keys = self._buckets.get(bucket)
            if keys is None:
                continue
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]
            if not keys:
                del self._buckets[bucket]

    def page(
        self, bucket: BucketKey, after: Key | None, limit: int
    ) -> tuple[list[str], Key | None]:
        """Up to ``limit`` task ARNs of ``bucket`` after ``after``, and the key to continue
        from (None on the last page)."""
        keys = self._buckets.get(bucket)
        if not keys:
            return [], None
        start = bisect_right(keys, after) if after is not None else 0
        chosen = keys[start : start + limit]
        tasks = self._tasks
        arns = [tasks[k[1]].arn for k in chosen]
        more = start + limit < len(keys)
        return arns, chosen[-1] if more and chosen else None

    def active(self, cluster: str) -> list[TaskSummary]:
        """The cluster's tasks that have not reached STOPPED: those desired RUNNING, then those
        stopping (each group in ListTasks' order)."""
        out = []
        for desired in ("RUNNING", STOPPED):
            for key in self._buckets.get((cluster, desired, None, None, None, None), ()):
                summary = self._tasks[key[1]]
                if summary.last_status != STOPPED:
                    out.append(summary)
        return out

    def stopped_before(
        self, cutoff: float, limit: int, keep: Callable[[str], bool] | None = None
    ) -> list[str]:
        """Up to ``limit`` ids of tasks that reached STOPPED at or before ``cutoff``, oldest
        first, each returned once (the caller forgets them); those ``keep`` names stay queued
        for a later sweep."""
        out: list[str] = []
        kept: list[tuple[float, str]] = []
        heap = self._stopped
        while heap and heap[0][0] <= cutoff and len(out) < limit:
            entry = heapq.heappop(heap)
            summary = self._tasks.get(entry[1])
            if summary is None or summary.stopped_at != entry[0]:
                continue  # forgotten, or stopped again at another time
            if keep is not None and keep(entry[1]):
                kept.append(entry)
            else:
                out.append(entry[1])
        for entry in kept:
            heapq.heappush(heap, entry)
        return out

    def next_stop_time(self) -> float | None:
        """The oldest stoppedAt still remembered (None when no task is stopped)."""
        heap = self._stopped
        while heap:
            stopped_at, task_id = heap[0]
            summary = self._tasks.get(task_id)
            if summary is not None and summary.stopped_at == stopped_at:
                return stopped_at
            heapq.heappop(heap)
        return None
