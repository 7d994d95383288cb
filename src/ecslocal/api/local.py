"""ecslocal's own endpoints, under ``/_ecslocal/v1/``: what no AWS API offers.

* ``GET /_ecslocal/v1/health`` - the daemon is up; which backend and memory enforcement.
* ``GET /_ecslocal/v1/tasks/{task_id}`` - which container stopped the task; diagnostics.
* ``GET /_ecslocal/v1/tasks/{task_id}/logs?after=SEQ&container=NAME&follow=1`` - a task's
  captured log lines as NDJSON, streamed while the task runs when ``follow`` is set (what
  ``ecslocal logs -f`` and ``ecslocal run`` read; tasks without awslogs have no other home).

Every route but health takes SigV4-signed requests only, and errors are ``{"message"}`` with
the status (api/local_auth.py).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ecslocal import __version__
from ecslocal.api.local_auth import error
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.logs import LogRouter
from ecslocal.store import Store

FOLLOW_POLL_SECONDS = 1.0
#: Log sequence numbers are SQLite INTEGERs: at most 2**63 - 1.
MAX_SEQ = 2**63 - 1
_BAD_AFTER = f"after must be a log sequence number: an integer from 0 to {MAX_SEQ}"


def _after(raw: str) -> int | None:
    """The ``after`` parameter, or None when it is not a sequence number (checked before the
    stream starts: once it has, an error can no longer be told)."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_SEQ)):
        return None
    value = int(raw)
    return value if value <= MAX_SEQ else None


def _no_task(task_id: str) -> web.Response:
    return error(404, f"Task {task_id} was not found.")


class LocalApi:
    def __init__(self, store: Store, agent: Agent, logs: LogRouter, backend_info: str) -> None:
        self.store = store
        self.agent = agent
        self.logs = logs
        self.backend_info = backend_info

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_ecslocal/v1/health", self.health),
            web.get("/_ecslocal/v1/tasks/{task_id}", self.task_extras),
            web.get("/_ecslocal/v1/tasks/{task_id}/logs", self.task_logs),
        ]

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "version": __version__, "runtime": self.backend_info}
        )

    async def task_extras(self, request: web.Request) -> web.Response:
        """What DescribeTasks has no field for: which container stopped the task, and what
        ecslocal noticed at start (static keys shadowing the task role)."""
        task_id = request.match_info["task_id"]
        task = self.agent.get_task(task_id)
        if task is None:
            return _no_task(task_id)
        return web.json_response(
            {
                "stoppedByContainer": task.stopped_by_container,
                "diagnostics": list(task.diagnostics),
            }
        )

    async def task_logs(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        after = _after(request.query.get("after", "0"))
        if after is None:
            return error(400, _BAD_AFTER)
        if self.agent.get_task(task_id) is None:
            return _no_task(task_id)
        container = request.query.get("container") or None
        follow = request.query.get("follow") in ("1", "true")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            await self._stream(response, task_id, after, container, follow)
        except ConnectionResetError:  # the reader went away (Ctrl-C); nothing to tell it
            return response
        await response.write_eof()
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        task_id: str,
        after: int,
        container: str | None,
        follow: bool,
    ) -> None:
        while True:
            waiter = self.logs.waiter(task_id)
            events = self.store.task_logs(task_id, after, container)
            if events:
                after = events[-1].seq
                payload = "".join(json.dumps(e.to_json()) + "\n" for e in events)
                await response.write(payload.encode())
                continue
            if not follow:
                break
            task = self.agent.get_task(task_id)
            if task is None or task.last_status == "STOPPED":
                self.logs.flush()
                if not self.store.task_logs(task_id, after, container, limit=1):
                    break
                continue
            try:
                await asyncio.wait_for(waiter.wait(), FOLLOW_POLL_SECONDS)
            except TimeoutError:
                pass
