"""The reaper: a small watchdog process that kills every container if the daemon dies.

The daemon starts it with a pipe on its stdin and tells it, one line at a time, which process
groups and cgroups belong to running containers (``+{json}`` / ``-{json}``). Only the daemon
holds the pipe's write end, so however the daemon ends (exit, crash, ``kill -9``) the reaper
reads end-of-file and SIGKILLs everything still listed, then exits. No container process
outlives the daemon.

Run as ``python -m ecslocal.runtime.reaper``; it imports nothing from ecslocal so it starts fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import IO, Any


def kill_entry(entry: dict[str, Any]) -> None:
    pgid = entry.get("pgid")
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    cgroup = entry.get("cgroup")
    if cgroup:
        procs = os.path.join(cgroup, "cgroup.procs")
        for _ in range(20):
            try:
                with open(procs) as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                break
            if not pids:
                break
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
    for entry in entries.values():
        kill_entry(entry)


class ReaperClient:
    """The daemon's side: starts the reaper and keeps it informed."""

    def __init__(self) -> None:
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

    def watch(self, key: str, pgid: int | None, cgroup: str | None) -> None:
        self._send("+", {"key": key, "pgid": pgid, "cgroup": cgroup})

    def forget(self, key: str) -> None:
        self._send("-", {"key": key})

    def _send(self, op: str, entry: dict[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._pipe.write(op + json.dumps(entry) + "\n")
            self._pipe.flush()

    def close(self) -> None:
        """Close the pipe: the reaper kills whatever is still listed, then exits."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


if __name__ == "__main__":
    main()
