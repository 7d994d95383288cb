"""Log capture: container lines are buffered, written to the store in batches, and followers
(``ecslocal logs -f``, ``ecslocal run``) are woken when new lines land.

With an ``awslogs`` logConfiguration the lines carry the log group and the stream name ECS
gives them, ``<awslogs-stream-prefix>/<container-name>/<task-id>``; without one they are kept
under the task alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ecslocal.clock import Clock
from ecslocal.store import Store

FLUSH_SECONDS = 0.05
FLUSH_LINES = 1000


def awslogs_destination(
    container_def: dict[str, Any], task_id: str, runtime_id: str
) -> tuple[str | None, str | None]:
    """(log group, log stream) for a container, or (None, None) without awslogs.

    ECS names the stream ``prefix/container-name/task-id`` when ``awslogs-stream-prefix`` is set;
    without a prefix (EC2 only) the stream is named after the container's runtime id.
    """
    log = container_def.get("logConfiguration") or {}
    if log.get("logDriver") != "awslogs":
        return None, None
    options = log.get("options") or {}
    group = options.get("awslogs-group")
    prefix = options.get("awslogs-stream-prefix")
    stream = f"{prefix}/{container_def['name']}/{task_id}" if prefix else runtime_id
    return group, stream


class LogRouter:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._pending: list[tuple[Any, ...]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._waiters: dict[str, asyncio.Event] = {}

    def append(
        self,
        task_id: str,
        container: str,
        source: str,
        log_group: str | None,
        log_stream: str | None,
        timestamp_ms: int,
        message: str,
    ) -> None:
        now_ms = int(self.clock.time() * 1000)
        self._pending.append(
            (task_id, container, source, log_group, log_stream, timestamp_ms, now_ms, message)
        )
        if len(self._pending) >= FLUSH_LINES:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        self.store.append_logs(rows)
        for task_id in {r[0] for r in rows}:
            event = self._waiters.pop(task_id, None)
            if event is not None:
                event.set()

    def waiter(self, task_id: str) -> asyncio.Event:
        """An event set the next time lines of ``task_id`` are written."""
        event = self._waiters.get(task_id)
        if event is None:
            event = self._waiters[task_id] = asyncio.Event()
        return event
