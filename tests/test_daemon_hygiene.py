"""A daemon run in-process (``ecslocal run`` without a daemon up: :class:`ThreadedDaemon`)
gives back everything it opened when it stops: its event loop is closed (selector and
self-pipe), the reaper's pidfd is unwatched and closed."""

from __future__ import annotations

import os
from pathlib import Path

from ecslocal.config import Config
from ecslocal.daemon import ThreadedDaemon


def _fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the listing's own descriptor, closed meanwhile
    return out


def _one_daemon(data: Path) -> ThreadedDaemon:
    threaded = ThreadedDaemon(Config(data_dir=data, port=0))
    threaded.start()
    threaded.stop()
    return threaded


def test_a_stopped_threaded_daemon_closes_its_loop_and_the_reapers_pidfd(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o700)
    # A first run loads what stays loaded for good (modules, the interpreter's own caches).
    _one_daemon(tmp_path / "data")
    before = _fds()
    threaded = _one_daemon(tmp_path / "data")
    left = {fd: target for fd, target in _fds().items() if fd not in before}
    assert threaded.loop.is_closed()
    assert threaded.daemon.backend is not None and threaded.daemon.backend.reaper is not None
    reaper = threaded.daemon.backend.reaper
    assert reaper._pidfd == -1
    # anon_inode:[pidfd] (the reaper's), anon_inode:[eventpoll] and the self-pipe's socket
    # pair (the loop's) were left before.
    assert left == {}, left


def test_a_closed_reaper_client_leaves_no_pidfd_on_the_loop() -> None:
    """``ReaperClient.close()`` unwatches and closes the reaper's pidfd itself: before, only
    the loop's callback for the reaper's exit did, which never runs if the loop does not
    iterate again after the close (a daemon stopping)."""
    import asyncio

    from ecslocal.runtime.reaper import ReaperClient

    async def main() -> tuple[dict[int, str], int, bool]:
        before = _fds()
        client = ReaperClient()
        pid = client.pid
        client.close()  # no await after it: the loop gets no chance to clean up for it
        left = {fd: t for fd, t in _fds().items() if fd not in before}
        gone = not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z"
        return left, client._pidfd, gone

    left, pidfd, gone = asyncio.run(main())
    assert gone, "the reaper did not exit on close"
    assert pidfd == -1 and left == {}, left


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
