"""ecslocal's own endpoints, under ``/_ecslocal/v1/``: what no AWS API offers.

* ``GET /_ecslocal/v1/health`` - the daemon is up; which backend and memory enforcement.
* ``GET /_ecslocal/v1/tasks/{task_id}`` - which container stopped the task; diagnostics.
* ``GET /_ecslocal/v1/tasks/{task_id}/logs?after=SEQ&container=NAME&follow=1`` - a task's
  captured log lines as NDJSON, streamed while the task runs when ``follow`` is set (what
  ``ecslocal logs -f`` and ``ecslocal run`` read; tasks without awslogs have no other home).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ecslocal import __version__
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.logs import LogRouter
from ecslocal.store import Store

FOLLOW_POLL_SECONDS = 1.0


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
        task = self.agent.get_task(request.match_info["task_id"])
        if task is None:
            return web.json_response(
                {"__type": "InvalidParameterException", "message": "The task was not found."},
                status=400,
            )
        return web.json_response(
            {
                "stoppedByContainer": task.get("_stoppedByContainer"),
                "diagnostics": task.get("_diagnostics") or [],
            }
        )

    async def task_logs(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        if self.agent.get_task(task_id) is None:
            return web.json_response(
                {"__type": "InvalidParameterException", "message": "The task was not found."},
                status=400,
            )
        after = int(request.query.get("after", "0"))
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
            if task is None or task["lastStatus"] == "STOPPED":
                self.logs.flush()
                if not self.store.task_logs(task_id, after, container, limit=1):
                    break
                continue
            try:
                await asyncio.wait_for(waiter.wait(), FOLLOW_POLL_SECONDS)
            except TimeoutError:
                pass
