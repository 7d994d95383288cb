"""Container health checks, with Docker's semantics (which ECS reports).

The first check runs ``interval`` seconds after the container starts, then one every
``interval``. A check that exits 0 within ``timeout`` passes. ``retries`` consecutive failures
make the container UNHEALTHY; failures during ``startPeriod`` do not count until the first
success (which ends the start period).

The monitor also keeps what the ECS agent reports as a container's ``Health`` in task metadata:
the agent records the status, the time, the check's output and (for UNHEALTHY) its exit code only
when the status changes (``SetHealthStatus`` in ``agent/api/container/container.go``), taking
the output of Docker's last health log entry, cut to 1024 characters
(``getMetadataHealthCheck`` in ``agent/dockerclient/dockerapi/docker_client.go``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecslocal.clock import Clock
from ecslocal.runtime.backends.base import ContainerHandle, ExecResult

log = logging.getLogger(__name__)

HEALTHY, UNHEALTHY, UNKNOWN = "HEALTHY", "UNHEALTHY", "UNKNOWN"
#: The agent's maxHealthCheckOutputLength.
MAX_OUTPUT = 1024


@dataclass(frozen=True)
class HealthReport:
    """The container health the agent reports: ``since`` is the wall-clock time of the last
    status change (None before the first); ``exit_code`` is 0 until a check makes the
    container UNHEALTHY, and is kept after that."""

    status: str = UNKNOWN
    since: float | None = None
    exit_code: int = 0
    output: str = ""


def check_log_entry(result: ExecResult, timeout: float) -> tuple[int, str]:
    """(exit code, output) of a check as Docker logs it: a check that timed out or could not
    run has exit code -1, and a timeout replaces the output."""
    if result.timed_out:
        return -1, f"Health check exceeded timeout ({timeout:g}s)"
    return (-1 if result.exit_code is None else result.exit_code), result.output


def health_check_argv(command: Sequence[str]) -> list[str] | None:
    """The argv a health check runs, as Docker runs ``Healthcheck.Test``: CMD runs its
    arguments, CMD-SHELL runs them through /bin/sh -c; NONE disables the check.

    The agent hands ``healthCheck.command`` to Docker unchanged: ECS sends it inside the
    container's raw Docker config (``{"Healthcheck": {"Test": [...]}}``), which the agent
    decodes into the container config as is (``dockerConfig`` in agent/api/task/task.go).
    Docker runs no probe for a Test whose first element is neither CMD nor CMD-SHELL: it logs
    "Unknown healthcheck type '<first>' (expected 'CMD')" and leaves the health "starting"
    (``getProbe`` in moby daemon/health.go), which the agent does not report
    (``MetadataFromContainer`` in agent/dockerclient/dockerapi/docker_client.go skips a
    "starting" health), so the container's healthStatus stays UNKNOWN. ecslocal does the same
    for, e.g., ``["/healthcheck"]``. (Fargate runs on its own agent, not Docker, whose source
    is not public; aws-observability/aws-otel-community#1320 reports that task definition
    HEALTHY there.)
    """
    if not command or command[0] == "NONE":
        return None
    if command[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(command[1:])]
    if command[0] == "CMD":
        return list(command[1:])
    log.warning("Unknown healthcheck type '%s' (expected 'CMD'): no health check runs", command[0])
    return None


class HealthMonitor:
    def __init__(
        self,
        check: Mapping[str, Any],
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
        self.report = HealthReport()

    async def run(self) -> None:
        if self.argv is None:
            return
        started = self.clock.monotonic()
        failures = 0
        in_start_period = self.start_period > 0
        while True:
            await self.clock.sleep(self.interval)
            result = await self.handle.exec(self.argv, self.clock.real_seconds(self.timeout))
            if in_start_period and self.clock.monotonic() - started >= self.start_period:
                in_start_period = False
            if result.exit_code == 0:
                failures = 0
                in_start_period = False
                self._set(HEALTHY, result)
                continue
            if in_start_period:
                continue  # failures in the start period don't count
            failures += 1
            if failures >= self.retries:
                self._set(UNHEALTHY, result)

    def _set(self, status: str, result: ExecResult) -> None:
        if status == self.status:
            return
        self.status = status
        exit_code, output = check_log_entry(result, self.timeout)
        self.report = HealthReport(
            status=status,
            since=self.clock.time(),
            exit_code=exit_code if status == UNHEALTHY else self.report.exit_code,
            output=output[:MAX_OUTPUT],
        )
        self.on_change(status)
