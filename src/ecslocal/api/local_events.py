"""``GET /_ecslocal/v1/events?task=ID&until=STATUS`` — the engine's events as NDJSON, as they
happen (what ``ecslocal events`` reads).

One JSON object a line, each an event of runtime/events.py (``type`` plus ECS's camelCase
names). With ``task``, the stream starts with the events the task already had (its recent
history), then follows it; it ends once the task is STOPPED. Without ``task``, it follows every
task from now on. ``until`` (a task status) ends the stream after the first TaskStateChanged
at that status or past it in the lifecycle (``until=RUNNING`` also ends at a task that stopped
before running). Otherwise the stream lasts until the client goes away or the daemon stops.

A reader that falls more than :attr:`EventBus.DEFAULT_QUEUE_SIZE` events behind gets, as its
last line, ``{"type": "Overflow", "message": ...}`` and the stream ends (the bus's overflow
rule: no silent gaps). An empty line every :data:`HEARTBEAT_SECONDS` keeps idle streams open
and lets the daemon notice a reader that left; readers skip empty lines.

Signed like every local route (api/local_auth.py); errors are ``{"message"}``: 404 for an
unknown task, 400 for an ``until`` that is not a task status.
"""

from __future__ import annotations

import json

from aiohttp import web

from ecslocal.api.local_auth import error
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.events import (
    TASK_LIFECYCLE,
    Event,
    EventBus,
    EventHistory,
    EventQueue,
    TaskStateChanged,
)

HEARTBEAT_SECONDS = 10.0
_OVERFLOW = {
    "type": "Overflow",
    "message": "This reader fell too far behind the engine's events and the stream was ended;"
    " read the task's state (DescribeTasks) and subscribe again.",
}


def _line(payload: dict[str, object]) -> bytes:
    return (json.dumps(payload) + "\n").encode()


class EventStream:
    """The bus's subscriber that serves the events to readers outside the daemon."""

    def __init__(self, bus: EventBus, agent: Agent) -> None:
        self.bus = bus
        self.agent = agent
        self.history = EventHistory(bus)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_ecslocal/v1/events", self.events)]

    async def events(self, request: web.Request) -> web.StreamResponse:
        task_id = request.query.get("task") or None
        until = request.query.get("until") or None
        if until is not None and until not in TASK_LIFECYCLE:
            return error(400, f"until must be a task status: one of {', '.join(TASK_LIFECYCLE)}")
        if task_id is not None and self.agent.get_task(task_id) is None:
            return error(404, f"Task {task_id} was not found.")
        # Subscribe and take the history with no await between: no event missed or repeated.
        queue = self.bus.queue(task_id)
        backlog = self.history.of(task_id) if task_id is not None else []
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(request)
            for event in backlog:
                await response.write(_line(event.to_json()))
                if self._ends(event, task_id, until):
                    return response
            if task_id is not None and not self.agent.is_running(task_id):
                return response  # stopped: no more events will come for it
            await self._follow(response, queue, task_id, until)
            await response.write_eof()
        except ConnectionResetError:  # the reader went away
            pass
        finally:
            self.bus.unsubscribe(queue)
        return response

    async def _follow(
        self,
        response: web.StreamResponse,
        queue: EventQueue,
        task_id: str | None,
        until: str | None,
    ) -> None:
        while True:
            try:
                event = await queue.get(HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b"\n")
                continue
            if event is None:
                if queue.overflowed:
                    await response.write(_line(_OVERFLOW))
                return
            await response.write(_line(event.to_json()))
            if self._ends(event, task_id, until):
                return

    @staticmethod
    def _ends(event: Event, task_id: str | None, until: str | None) -> bool:
        if not isinstance(event, TaskStateChanged):
            return False
        if task_id is not None and event.last_status == "STOPPED":
            return True
        if until is None:
            return False
        return TASK_LIFECYCLE.index(event.last_status) >= TASK_LIFECYCLE.index(until)
