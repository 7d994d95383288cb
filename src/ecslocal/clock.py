"""The one source of "now".

Every lifetime, timeout and timestamp in ecslocal reads time through a :class:`Clock`, so that a
test (or a time-warped task, later) can run time faster than the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time, optionally running ``speed`` times faster than real time."""

    def __init__(self, speed: float = 1.0, origin: tuple[float, float] | None = None) -> None:
        """``origin`` is the (``time.time()``, ``time.monotonic()``) pair at which this clock
        and the wall clock agree (default: now); from there it runs ``speed`` times faster."""
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._wall0, self._mono0 = origin if origin is not None else (time.time(), time.monotonic())

    def time(self) -> float:
        """Seconds since the epoch, as this clock sees them."""
        if self.speed == 1.0:
            return time.time()
        return self._wall0 + (time.monotonic() - self._mono0) * self.speed

    def monotonic(self) -> float:
        return time.monotonic() * self.speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def real_seconds(self, seconds: float) -> float:
        """How many real seconds ``seconds`` of this clock's time take."""
        return seconds / self.speed
