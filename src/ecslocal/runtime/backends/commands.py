"""Short commands beside a container (health checks) and the exit future every process of the
process backend is watched with: a pidfd on the event loop, no thread per child."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence

from ecslocal.runtime.backends.base import ExecResult

log = logging.getLogger("ecslocal.backend")

EXEC_OUTPUT_LIMIT = 4096  # Docker keeps at most 4 KiB of health check output
EXIT_CHECK_SECONDS = 5.0  # the safety net under each exit future's pidfd (see exit_future)
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
    process group id) cannot be reused yet, so a group kill there cannot hit a stranger.

    The pidfd's readiness is the signal; a check every :data:`EXIT_CHECK_SECONDS` (``waitid``
    with ``WNOWAIT``, which reaps nothing) is the safety net, so that an exit the event loop
    never reports cannot leave a container RUNNING for ever (seen once under load in 2,000-task
    churns: an ``unshare`` left a zombie). It logs when it is the one that saw the exit."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(proc.pid)
    check: asyncio.TimerHandle | None = None

    def on_exit(by_check: bool = False) -> None:
        nonlocal check
        if fut.done():
            return
        if check is not None:
            check.cancel()
            check = None
        loop.remove_reader(pidfd)
        if not by_check or _is_pidfd_of(pidfd, proc.pid):
            os.close(pidfd)
        else:  # the number was closed by its owner's mistake and may be another's now
            log.error("pidfd %d of pid %d was closed elsewhere; not closing it", pidfd, proc.pid)
        if before_reap is not None:
            before_reap()
        code = proc.wait()
        fut.set_result(128 - code if code < 0 else code)

    def exited() -> bool:
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return proc.returncode is not None
        return info is not None

    def look() -> None:
        nonlocal check
        check = None
        if fut.done():
            return
        if exited():
            log.warning("pid %d exited unseen by its pidfd: taken by the periodic check", proc.pid)
            on_exit(by_check=True)
            return
        check = loop.call_later(EXIT_CHECK_SECONDS, look)

    loop.add_reader(pidfd, on_exit)
    check = loop.call_later(EXIT_CHECK_SECONDS, look)
    return fut


def _is_pidfd_of(fd: int, pid: int) -> bool:
    """Whether descriptor ``fd`` is still a pidfd on ``pid`` (its fdinfo's ``Pid:`` line)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            return any(line.split() == ["Pid:", str(pid)] for line in f)
    except OSError:
        return False


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
