"""Log capture: container lines are buffered, written to the store in batches, and followers
(``ecslocal logs -f``, ``ecslocal run``) are woken when new lines land.

Lines read from a spool file (:mod:`ecslocal.runtime.backends.spool`) come with the file offset
after them; each batch commits the events and those offsets in one transaction, so after a crash
the spool is read again from exactly the first byte not stored. A batch the store cannot take (a
full disk) stays pending and is retried; the engine never sees the fault.

With an ``awslogs`` logConfiguration the lines carry the log group and the stream name ECS
gives them, ``<awslogs-stream-prefix>/<container-name>/<task-id>``; without one they are kept
under the task alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecslocal.clock import Clock
from ecslocal.storage.db import StorageError
from ecslocal.store import Store

FLUSH_SECONDS = 0.05
FLUSH_LINES = 1000
RETRY_SECONDS = 1.0  # after the store refused a batch


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
        #: Spool name -> (name, task id, container, source, offset after the pending lines).
        self._offsets: dict[str, tuple[str, str, str, str, int]] = {}
        #: Spool files to delete once their last offset is committed; rows to forget.
        self._finished: list[tuple[str, Path]] = []
        self._forget: list[str] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._failing = False  # the last batch was refused: retry on the timer only
        self._closed = False  # close() made the last attempt: no timer is armed after it
        #: Told, after each commit, how far each spool is now stored (spool name -> offset).
        self.on_commit: Callable[[dict[str, int]], None] | None = None
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
        if len(self._pending) >= FLUSH_LINES and not self._failing:
            self.flush()
        else:
            self._schedule(FLUSH_SECONDS)

    def _schedule(self, delay: float) -> None:
        if self._flush_handle is None and not self._closed:
            self._flush_handle = asyncio.get_running_loop().call_later(delay, self.flush)

    def advance(self, name: str, task_id: str, container: str, source: str, offset: int) -> None:
        """The spool ``name`` is read up to ``offset`` (committed with the next batch)."""
        self._offsets[name] = (name, task_id, container, source, offset)
        self._schedule(FLUSH_SECONDS)

    def finished(self, name: str, path: Path) -> None:
        """``path`` is read to its end: delete it once its last offset is committed."""
        self._finished.append((name, path))
        self._schedule(FLUSH_SECONDS)

    def forget(self, names: list[str]) -> None:
        self._forget += names
        self._schedule(FLUSH_SECONDS)

    def flush(self) -> None:
        """Commit what is pending; never raises (a refused batch is retried)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not (self._pending or self._offsets or self._finished or self._forget):
            return
        rows, self._pending = self._pending, []
        offsets, self._offsets = self._offsets, {}
        finished, self._finished = self._finished, []
        forget, self._forget = self._forget, []
        try:
            self.store.append_logs(rows, offsets.values(), forget)
        except StorageError:  # logged once by the database; keep everything and retry
            self._pending = rows + self._pending
            self._offsets = {**offsets, **self._offsets}
            self._finished = finished + self._finished
            self._forget = forget + self._forget
            self._failing = True
            self._schedule(RETRY_SECONDS)
            return
        self._failing = False
        if self.on_commit is not None and offsets:
            self.on_commit({name: row[4] for name, row in offsets.items()})
        for name, path in finished:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.rmdir(path.parent)  # the task's spool directory, once empty
            self._forget.append(name)
        if self._forget:
            self._schedule(FLUSH_SECONDS)
        for task_id in {r[0] for r in rows}:
            event = self._waiters.pop(task_id, None)
            if event is not None:
                event.set()

    def close(self) -> None:
        """The daemon stops: one last attempt to commit what is pending, then no timer (a
        refused batch's retry) stays armed on the loop to write into a store being closed.
        What that attempt could not store stays in the spool files, beyond their stored
        offsets: the next start reads it from there (:meth:`Spool.recover`)."""
        self.flush()
        if self._forget and not self._failing:
            self.flush()  # the rows of spools the first flush deleted
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def waiter(self, task_id: str) -> asyncio.Event:
        """An event set the next time lines of ``task_id`` are written."""
        event = self._waiters.get(task_id)
        if event is None:
            event = self._waiters[task_id] = asyncio.Event()
        return event
