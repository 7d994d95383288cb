"""Container health checks, with Docker's semantics (which ECS reports).

The first check runs ``interval`` seconds after the container starts, then one every
``interval``. A check that exits 0 within ``timeout`` passes. ``retries`` consecutive failures
make the container UNHEALTHY; failures during ``startPeriod`` do not count until the first
success (which ends the start period).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecslocal.clock import Clock
from ecslocal.runtime.backends.base import ContainerHandle

HEALTHY, UNHEALTHY, UNKNOWN = "HEALTHY", "UNHEALTHY", "UNKNOWN"


def health_check_argv(command: list[str]) -> list[str] | None:
    """The argv a health check runs: CMD runs its arguments, CMD-SHELL runs them through
    /bin/sh -c; NONE disables the check."""
    if not command or command[0] == "NONE":
        return None
    if command[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(command[1:])]
    return list(command[1:])


class HealthMonitor:
    def __init__(
        self,
        check: dict[str, Any],
        handle: ContainerHandle,
        clock: Clock,
        on_change: Callable[[str], None],
    ) -> None:
        self.argv = health_check_argv(check.get("command") or [])
        self.interval = float(check.get("interval", 30))
        self.timeout = float(check.get("timeout", 5))
        self.retries = int(check.get("retries", 3))
        self.start_period = float(check.get("startPeriod", 0))
        self.handle = handle
        self.clock = clock
        self.on_change = on_change
        self.status = UNKNOWN
        self.last_output = ""
        self.checks = 0

    async def run(self) -> None:
        if self.argv is None:
            return
        started = self.clock.monotonic()
        failures = 0
        in_start_period = self.start_period > 0
        while True:
            await self.clock.sleep(self.interval)
            result = await self.handle.exec(self.argv, self.clock.real_seconds(self.timeout))
            self.checks += 1
            self.last_output = result.output
            if in_start_period and self.clock.monotonic() - started >= self.start_period:
                in_start_period = False
            if result.exit_code == 0:
                failures = 0
                in_start_period = False
                self._set(HEALTHY)
                continue
            if in_start_period:
                continue  # failures in the start period don't count
            failures += 1
            if failures >= self.retries:
                self._set(UNHEALTHY)

    def _set(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.on_change(status)
