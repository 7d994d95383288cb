"""Stopped tasks are forgotten after a retention, as ECS forgets them.

"Currently, stopped tasks appear in the returned results for at least one hour."
(DescribeTasks, Amazon ECS API Reference:
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html)

ecslocal keeps a stopped task for ``retention`` seconds of the daemon's clock after its
``stoppedAt`` (default 3600, ``serve --stopped-task-retention``), then deletes its row: from
then on DescribeTasks answers the ``MISSING`` failure and ListTasks no longer lists it. Its log
events stay (CloudWatch Logs keeps them under the log group's own retention).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ecslocal.clock import Clock
from ecslocal.store import Store

log = logging.getLogger("ecslocal.retention")

DEFAULT_RETENTION = 3600.0
#: Tasks deleted per transaction; the sweep yields to the event loop between batches.
BATCH = 500
#: The longest the sweep sleeps (a task stopping meanwhile expires at least this much later).
MAX_SLEEP = 60.0
#: The shortest pause between sweeps (a task kept because it is still winding down).
MIN_SLEEP = 0.5


class StoppedTaskRetention:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        retention: float,
        is_live: Callable[[str], bool] = lambda task_id: False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention
        self.is_live = is_live
        self.forgotten = 0
        self._job: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._job = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()
            try:
                await self._job
            except asyncio.CancelledError:
                pass
            self._job = None

    def sweep(self) -> int:
        """Forget up to one batch of the tasks whose retention has passed; how many."""
        cutoff = self.clock.time() - self.retention
        expired = self.store.tasks.stopped_before(cutoff, BATCH, keep=self.is_live)
        if expired:
            self.store.forget_tasks(expired)
            self.forgotten += len(expired)
        return len(expired)

    async def _run(self) -> None:
        while True:
            try:
                while self.sweep() == BATCH:
                    await asyncio.sleep(0)  # let requests in between batches
            except Exception:  # a storage fault must not end the sweep for good
                log.exception("forgetting stopped tasks failed")
            oldest = self.store.tasks.next_stop_time()
            wait = min(self.retention, MAX_SLEEP)
            if oldest is not None:
                wait = min(wait, oldest + self.retention - self.clock.time())
            await self.clock.sleep(max(MIN_SLEEP, wait))
