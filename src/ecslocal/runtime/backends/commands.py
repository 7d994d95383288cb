"""Short commands beside a container (health checks) and the exit future every process of the
process backend is watched with: a pidfd on the event loop, no thread per child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence

from ecslocal.runtime.backends.base import ExecResult

EXEC_OUTPUT_LIMIT = 4096  # Docker keeps at most 4 KiB of health check output
DRAIN_SECONDS = 1.0  # how long to wait for output pipes after a container's processes are gone


class _Collector(asyncio.Protocol):
    """Collects up to EXEC_OUTPUT_LIMIT bytes of an exec's output."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        room = EXEC_OUTPUT_LIMIT - len(self.data)
        if room > 0:
            self.data += data[:room]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def exit_future(
    proc: subprocess.Popen[bytes], before_reap: Callable[[], None] | None = None
) -> asyncio.Future[int]:
    """A future for ``proc``'s exit code (Docker's convention: 128 + signal if signalled).

    ``before_reap`` runs once ``proc`` has exited but before it is reaped: its pid (and so its
    process group id) cannot be reused yet, so a group kill there cannot hit a stranger."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(proc.pid)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if before_reap is not None:
            before_reap()
        code = proc.wait()
        if not fut.done():
            fut.set_result(128 - code if code < 0 else code)

    loop.add_reader(pidfd, on_exit)
    return fut


async def run_command(
    argv: Sequence[str], env: dict[str, str], cwd: str | None, timeout: float
) -> ExecResult:
    """Run a short command (a health check) and collect its exit code and output."""
    loop = asyncio.get_running_loop()
    try:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ExecResult(exit_code=None, output=f"exec failed: {exc}")

    def kill_group() -> None:  # anything the command left behind, while the pgid is ours
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    exited = exit_future(proc, kill_group)
    assert proc.stdout is not None
    _, collector = await loop.connect_read_pipe(_Collector, proc.stdout)
    try:
        code = await asyncio.wait_for(asyncio.shield(exited), timeout)
        timed_out = False
    except TimeoutError:
        kill_group()
        code = await exited
        timed_out = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collector.closed, DRAIN_SECONDS)
    output = collector.data.decode("utf-8", "replace")
    return ExecResult(exit_code=None if timed_out else code, output=output, timed_out=timed_out)
