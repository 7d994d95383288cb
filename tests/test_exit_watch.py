"""The exit future's safety net (runtime/backends/commands.py): an exit the event loop never
reports through the pidfd is still seen, so a container cannot stay RUNNING for ever.

Seen before the net existed: under load, 2 of 4 runs of ``bench/churn.py --tasks 2000`` left
one task RUNNING for 600 s with its ``unshare`` a zombie the daemon never reaped."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from ecslocal.runtime.backends import commands


def test_an_exit_its_pidfd_never_reports_is_seen_by_the_check(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(commands, "EXIT_CHECK_SECONDS", 0.05)
    reaped_after: list[bool] = []

    async def main() -> int:
        proc = subprocess.Popen(["sh", "-c", "exit 7"])
        loop = asyncio.get_running_loop()
        before = set(loop._selector.get_map())  # type: ignore[attr-defined]

        def before_reap() -> None:  # the pid must not be reaped yet (a group kill uses it)
            reaped_after.append(
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            )

        fut = commands.exit_future(proc, before_reap)
        (pidfd,) = set(loop._selector.get_map()) - before  # type: ignore[attr-defined]
        loop.remove_reader(pidfd)  # the readiness event is lost
        code = await asyncio.wait_for(fut, 10)
        with pytest.raises(OSError):
            os.fstat(pidfd)  # still its own pidfd when seen, so it was closed, not leaked
        return code

    assert asyncio.run(main()) == 7
    assert reaped_after == [True]
    assert "exited unseen by its pidfd" in caplog.text
