"""The task endpoints' rate limit, as the ECS agent's.

The agent wraps every path of its task metadata server — credentials, metadata, stats, the
agent API — in one tollbooth limiter: 40 requests/s steady, bursts of 60
(``DefaultTaskMetadataSteadyStateRate``/``BurstRate`` in ``agent/config/config.go``), counted
per caller address, which for a task in its own network namespace is the task. ecslocal keeps
one budget per task for all of its endpoints, and answers over it as tollbooth does: 429 with
its default message. ``ECSLOCAL_CREDENTIALS_RATE_LIMIT=off`` lifts it (benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from ecslocal.clock import Clock

RATE_STEADY = 40.0
RATE_BURST = 60.0
LIMIT_MESSAGE = "You have reached maximum request limit."


@dataclass
class TokenBucket:
    """tollbooth's limiter: ``rate`` tokens/s refill, at most ``burst`` stored."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class TaskRateLimits:
    """One budget per running task, shared by all of the task's endpoints."""

    def __init__(self, clock: Clock, enabled: bool = True) -> None:
        self.clock = clock
        self.enabled = enabled
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, task_id: str) -> bool:
        if not self.enabled:
            return True
        bucket = self._buckets.get(task_id)
        if bucket is None:
            bucket = self._buckets[task_id] = TokenBucket(RATE_STEADY, RATE_BURST)
        return bucket.take(self.clock.monotonic())

    def forget(self, task_id: str) -> None:
        self._buckets.pop(task_id, None)


def too_many_requests() -> web.Response:
    return web.Response(status=429, text=LIMIT_MESSAGE, content_type="text/plain")
