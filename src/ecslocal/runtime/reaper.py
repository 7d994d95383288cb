"""The reaper: a small watchdog process that kills every container if the daemon dies.

The daemon starts it with a pipe on its stdin and tells it, one line at a time, which
containers are running (``+{json}`` / ``-{json}``). Only the daemon holds the pipe's write end,
so however the daemon ends (exit, crash, ``kill -9``) the reaper reads end-of-file and SIGKILLs
everything still listed, then exits. With PID namespaces the kernel already takes a container
down with the daemon (PDEATHSIG, see :mod:`ecslocal.runtime.backends.namespaces`); the reaper
remains for cgroups and for machines without namespaces.

Nothing is killed on a pid alone: each entry carries the identity of what it names (boot id,
the start time in field 22 of /proc/PID/stat, the PID namespace's inode), and a pid whose
identity no longer matches is someone else's now (:func:`kill_entry`). A restarted daemon
uses the same check on its recovery records.

The daemon watches the reaper (:class:`ReaperClient`): if it dies it is started again and told
every entry anew; if that fails the backend refuses new tasks.

Run as ``python -m ecslocal.runtime.reaper``; it imports nothing from ecslocal so it starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from typing import IO, Any

log = logging.getLogger("ecslocal.reaper")

#: The namespace init's "end the container, keep its output" (SIGSTKFLT, see
#: ecslocal.runtime.backends.nsinit; written here again: the reaper imports nothing from ecslocal).
END = signal.SIGSTKFLT
#: How long an init gets to end its container (kill, drain its pipes) before a SIGKILL.
END_WAIT_SECONDS = 5.0

#: More restarts than this within RESTART_WINDOW seconds and the reaper is given up on.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


# -- process identity -------------------------------------------------------------------------
def boot_id() -> str:
    """This boot's random id: pids and start times mean nothing across a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (field 22 of /proc/PID/stat, proc(5))."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Field 2 (comm) may hold spaces and parentheses: split after its last ")".
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_namespace(pid: int) -> int | None:
    """The inode of ``pid``'s PID namespace (/proc/PID/ns/pid)."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def identity(pid: int) -> dict[str, Any]:
    return {"start": start_time(pid), "pidns": pid_namespace(pid)}


def is_same(pid: int | None, start: int | None, pidns: int | None = None) -> bool:
    """True if ``pid`` is still the process that had ``start`` (and ``pidns``)."""
    if not pid or start is None:
        return False
    if start_time(pid) != start:
        return False
    return pidns is None or pid_namespace(pid) == pidns


def kill_entry(entry: dict[str, Any]) -> bool:
    """SIGKILL what ``entry`` names, once its identity is verified; True if something was."""
    return kill_entries([entry])[0]


def kill_entries(entries: list[dict[str, Any]]) -> list[bool]:
    """End what each entry names, once its identity is verified; per entry, True if
    something was still running. Nothing is killed on a pid alone: an entry of another boot
    (or without a boot id) names no process, and each pid must still have the start time
    (and PID namespace) recorded for it.

    * ``init_pid`` (``init_start``, ``pidns``): the container's PID-namespace init. It gets
      :data:`END` first, for which it kills the rest of its namespace, relays what the app's
      output pipes still hold into the spool and exits; whatever has not ended after
      :data:`END_WAIT_SECONDS` is SIGKILLed. A pidfd is taken before the identity check, so
      the signals cannot reach a process that reused the pid in between.
    * ``pgid`` (``pid``, ``start``, ``leader_pidns``): the container's process group, killed
      only while its leader is still the process that started it (a group whose leader is
      gone cannot be told from a stranger's), and only after the init has ended: the init is
      in that group, and a SIGKILL would lose what its pipes hold.
    * ``cgroup``: every process in the container's cgroup (a path only ecslocal creates).
    """
    found = [False] * len(entries)
    boot = boot_id()
    inits: list[int] = []
    for i, entry in enumerate(entries):
        if not boot or entry.get("boot") != boot:
            continue
        fd = _verified_pidfd(entry.get("init_pid"), entry.get("init_start"), entry.get("pidns"))
        if fd is None:
            continue
        try:
            signal.pidfd_send_signal(fd, END)
            found[i] = True
        except ProcessLookupError:
            pass
        inits.append(fd)
    _wait_exited(inits, END_WAIT_SECONDS)
    for fd in inits:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)  # nothing if it has ended
        os.close(fd)
    for i, entry in enumerate(entries):
        pgid = entry.get("pgid")
        ours = bool(boot) and entry.get("boot") == boot
        leader = (entry.get("pid"), entry.get("start"), entry.get("leader_pidns"))
        if ours and pgid and is_same(*leader):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                found[i] = True
        cgroup = entry.get("cgroup")
        if cgroup:
            found[i] = kill_cgroup(cgroup) or found[i]
    return found


def _verified_pidfd(pid: Any, start: Any, pidns: Any) -> int | None:
    """A pidfd on ``pid`` if it is (still) the process with that start time and PID
    namespace, else None."""
    if not isinstance(pid, int) or pid <= 0 or start is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if not is_same(pid, start, pidns):
        os.close(fd)
        return None
    return fd


def _wait_exited(pidfds: list[int], timeout: float) -> None:
    """Until every process behind ``pidfds`` has exited (a pidfd is readable then), or
    ``timeout`` s."""
    poller = select.poll()
    for fd in pidfds:
        poller.register(fd, select.POLLIN)
    left = set(pidfds)
    deadline = time.monotonic() + timeout
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for fd, _ in poller.poll(remaining * 1000):
            left.discard(fd)
            poller.unregister(fd)


def kill_cgroup(cgroup: str) -> bool:
    found = False
    procs = os.path.join(cgroup, "cgroup.procs")
    # As CgroupGroup.kill_all (runtime/memory.py), written again on purpose: the reaper
    # imports nothing from ecslocal.
    for _ in range(20):
        try:
            with open(procs) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            break
        if not pids:
            break
        found = True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    for path in (cgroup, os.path.dirname(cgroup)):
        for _ in range(20):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)
    return found


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the daemon's terminal is not ours
    entries: dict[str, dict[str, Any]] = {}
    for line in sys.stdin:
        op, payload = line[:1], line[1:].strip()
        if not payload:
            continue
        entry = json.loads(payload)
        key = entry["key"]
        if op == "+":
            entries[key] = entry
        elif op == "-":
            entries.pop(key, None)
    kill_entries(list(entries.values()))


class ReaperClient:
    """The daemon's side: starts the reaper, keeps it informed, and restarts it if it dies.

    The reaper's exit is watched with a pidfd on the event loop (no thread). On an unexpected
    exit a new reaper is started and told every entry again; if that fails,
    :attr:`failure` says why and the backend refuses new tasks."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        #: Why the reaper could not be restarted (None while it runs).
        self.failure: str | None = None
        self.restarts = 0
        self._recent: list[float] = []  # monotonic times of recent restarts
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pidfd = -1
        self._spawn()

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ecslocal.runtime.reaper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            text=True,
        )
        assert self._proc.stdin is not None
        self._pipe: IO[str] = self._proc.stdin
        # The write end must not leak into containers, or a container would keep it open.
        os.set_inheritable(self._pipe.fileno(), False)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing to watch with
            return
        self._pidfd = os.pidfd_open(self._proc.pid)
        self._loop.add_reader(self._pidfd, self._exited)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _unwatch(self) -> None:
        if self._pidfd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    def _exited(self) -> None:
        self._unwatch()
        code = self._proc.wait()
        if self._closing:
            return
        old = self._proc.pid
        with contextlib.suppress(OSError, ValueError):
            self._pipe.close()
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < RESTART_WINDOW] + [now]
        try:
            if len(self._recent) > MAX_RESTARTS:  # it dies as soon as it starts: give up
                raise OSError(f"it exited {len(self._recent)} times in {RESTART_WINDOW:g} s")
            self._spawn()
            for entry in self.entries.values():
                self._write("+", entry)
        except OSError as exc:
            self.failure = (
                f"the reaper (pid {old}) exited (status {code}) and could not be restarted:"
                f" {exc}; no new tasks are started"
            )
            log.error("%s", self.failure)
            return
        self.restarts += 1
        log.warning(
            "reaper (pid %d) exited (status %d); restarted as pid %d, re-sent %d container(s)",
            old,
            code,
            self._proc.pid,
            len(self.entries),
        )

    def watch(self, key: str, entry: dict[str, Any]) -> None:
        """Tell the reaper about a container (again, to update what it knows)."""
        full = {"key": key, "boot": boot_id(), **entry}
        self.entries[key] = full
        self._write("+", full)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)
        self._write("-", {"key": key})

    def _write(self, op: str, entry: dict[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._pipe.write(op + json.dumps(entry) + "\n")
            self._pipe.flush()

    def stop_watching(self) -> None:
        """No restart from now on: the reaper's pidfd leaves the loop and is closed. Call it on
        the loop's thread (``remove_reader`` is not thread-safe), before :meth:`close`."""
        self._closing = True
        self._unwatch()

    def close(self) -> None:
        """Close the pipe: the reaper kills whatever is still listed, then exits. Blocks (at
        most 5 s) for its exit, so the daemon runs it in a worker thread, after
        :meth:`stop_watching` on the loop's."""
        self._closing = True
        if self._loop is None or _on_thread_of(self._loop):
            self._unwatch()
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


def _on_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return loop.is_closed()


if __name__ == "__main__":
    main()
