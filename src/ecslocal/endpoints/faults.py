"""Failures on demand: what goes wrong on Fargate after hours, made to happen now.

A fault has a target, a kind, a scope (one task, or every task) and a duration:

* ``credentials``: ``refuse``, ``http-500``, ``http-503``, ``slow`` (``delayMs`` before
  answering), ``expire`` (the task's current credentials expire now; the endpoint vends fresh
  ones);
* ``metadata``: ``refuse``, ``http-500``, ``slow``;
* ``sts``: ``refuse``, ``http-503``, ``slow`` — the sidecar-not-ready race at start-up; scoped
  to a task, it hits the requests signed with that task's role credentials;
* ``imds``: ``refuse``, ``http-500``, ``slow`` — instance metadata unavailable (for every task:
  IMDS cannot tell which task asks).

``refuse`` is a TCP refusal (``ECONNREFUSED``, "connect: connection refused") where the endpoint
has a listener of its own: each task's credentials, metadata and STS listeners and the daemon's
IMDS listener (:mod:`ecslocal.endpoints.listeners`; containers get their URLs in their
environment) stop listening while a ``refuse`` fault covers them, and close the connections
they had. On the daemon's shared port (host clients reach every endpoint there too) a refused
request's connection is closed without an answer instead: a shared port cannot refuse one
endpoint and accept another.

HTTP: ``POST /_ecslocal/v1/faults`` ``{"target", "kind", "durationSeconds"?, "task"?, "delayMs"?}``,
``GET /_ecslocal/v1/faults``, ``DELETE /_ecslocal/v1/faults[/{id}]``. CLI: ``ecslocal fault``.
Durations run on ecslocal's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from ecslocal.arns import task_id_of
from ecslocal.clock import Clock

KINDS = {
    "credentials": ("refuse", "http-500", "http-503", "slow", "expire"),
    "metadata": ("refuse", "http-500", "slow"),
    "sts": ("refuse", "http-503", "slow"),
    "imds": ("refuse", "http-500", "slow"),
}
DEFAULT_DURATION = 60.0

log = logging.getLogger("ecslocal.faults")


@dataclass
class Fault:
    id: str
    target: str
    kind: str
    task: str | None
    until: float
    delayMs: int = 0  # noqa: N815 - the JSON name

    def to_json(self, now: float) -> dict[str, Any]:
        out = asdict(self)
        out["remainingSeconds"] = max(0.0, round(self.until - now, 3))
        return out


class FaultError(ValueError):
    pass


class Faults:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._faults: dict[str, Fault] = {}
        self._watchers: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a fault is added or cleared (not when one runs out:
        see :meth:`next_expiry`)."""
        self._watchers.append(callback)

    def _changed(self) -> None:
        for callback in self._watchers:
            try:
                callback()
            except Exception:  # a watcher's failure must not fail the fault API
                log.exception("fault watcher failed")

    def add(
        self,
        target: str,
        kind: str,
        duration: float = DEFAULT_DURATION,
        task: str | None = None,
        delay_ms: int = 0,
    ) -> Fault:
        if target not in KINDS:
            raise FaultError(f"target must be one of {', '.join(KINDS)}")
        if kind not in KINDS[target]:
            raise FaultError(f"kind for {target} must be one of {', '.join(KINDS[target])}")
        if task is not None and target == "imds":
            # One instance metadata service answers every task on the instance; nothing in a
            # request to it says which task asks.
            raise FaultError("imds faults are for every task: IMDS cannot tell which task asks")
        if not 0 < duration <= 7 * 86400:
            raise FaultError("durationSeconds must be in (0, 604800]")
        if kind == "slow" and not 0 < delay_ms <= 600_000:
            raise FaultError("a slow fault needs delayMs in (0, 600000]")
        fault = Fault(
            secrets.token_hex(6), target, kind, task, self.clock.time() + duration, delay_ms
        )
        self._faults[fault.id] = fault
        self._changed()
        return fault

    def active(self, target: str, task_id: str | None = None) -> Fault | None:
        now = self.clock.time()
        for fault_id, fault in list(self._faults.items()):
            if fault.until <= now:
                del self._faults[fault_id]
                continue
            if fault.target == target and fault.task in (None, task_id):
                return fault
        return None

    def refusing(self, target: str, task_id: str | None = None) -> bool:
        """True while a ``refuse`` fault covers ``target`` for ``task_id`` (whatever other
        faults are also active)."""
        now = self.clock.time()
        return any(
            f.kind == "refuse" and f.target == target and f.task in (None, task_id)
            for f in self._faults.values()
            if f.until > now
        )

    def next_expiry(self, kind: str | None = None) -> float | None:
        """When the next active fault (of ``kind``) runs out, on ecslocal's clock."""
        now = self.clock.time()
        ends = [f.until for f in self._faults.values() if f.until > now and kind in (None, f.kind)]
        return min(ends, default=None)

    def list(self) -> list[Fault]:
        self.active("")  # drop the expired ones
        return list(self._faults.values())

    def clear(self, fault_id: str | None = None) -> int:
        if fault_id is None:
            n = len(self._faults)
            self._faults.clear()
        else:
            n = 1 if self._faults.pop(fault_id, None) is not None else 0
        if n:
            self._changed()
        return n


async def apply(fault: Fault | None, request: web.Request) -> web.Response | None:
    """Play ``fault`` on ``request``: None to go on answering normally, or the response to
    send instead (after ``refuse`` there is no one to send it to: on a shared port the
    connection is closed without an answer, the nearest a port that stays open comes to a
    refusal)."""
    if fault is None:
        return None
    if fault.kind == "slow":
        await asyncio.sleep(fault.delayMs / 1000)
        return None
    if fault.kind == "refuse":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never sent: the connection is gone
    status = 500 if fault.kind == "http-500" else 503
    code = "InternalServerError" if status == 500 else "ServiceUnavailable"
    body = {"code": code, "message": f"ecslocal fault {fault.id} ({fault.kind})"}
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )


def routes(faults: Faults, expire_credentials: Any) -> list[web.RouteDef]:
    """``expire_credentials(task_id) -> bool`` ends a task's current credentials now."""

    async def add(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise FaultError("the body must be a JSON object")
            task = body.get("task")
            task_id = task_id_of(str(task)) if task else None
            target, kind = str(body.get("target", "")), str(body.get("kind", ""))
            if target == "credentials" and kind == "expire":
                if not task_id or not expire_credentials(task_id):
                    raise FaultError("expire needs the id of a running task with a task role")
                return web.json_response({"expired": task_id})
            fault = faults.add(
                target,
                kind,
                float(body.get("durationSeconds", DEFAULT_DURATION)),
                task_id,
                int(body.get("delayMs", 0)),
            )
        except (FaultError, ValueError, TypeError, OverflowError) as exc:  # int(Infinity)
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response(fault.to_json(faults.clock.time()), status=201)

    async def listing(request: web.Request) -> web.Response:
        now = faults.clock.time()
        return web.json_response({"faults": [f.to_json(now) for f in faults.list()]})

    async def clear(request: web.Request) -> web.Response:
        return web.json_response({"cleared": faults.clear(request.match_info.get("fault_id"))})

    base = "/_ecslocal/v1/faults"
    return [
        web.post(base, add),
        web.get(base, listing),
        web.delete(base, clear),
        web.delete(base + "/{fault_id}", clear),
    ]
