"""PID + mount namespaces for the process backend's containers, through util-linux.

Each container's command runs as::

    setpriv --pdeathsig KILL -- unshare --pid --fork --kill-child=STKFLT --mount-proc
        [--map-current-user] -- python -I -S nsinit.py FD argv…

* ``setpriv --pdeathsig KILL``: the kernel SIGKILLs ``unshare`` when the daemon dies, however
  it dies (``kill -9`` included); PR_SET_PDEATHSIG survives the exec of a non-setuid binary
  (prctl(2)).
* ``unshare --fork --kill-child=STKFLT``: ``unshare`` forks the namespace's first process and
  sets PDEATHSIG=SIGSTKFLT on it, so the chain daemon → unshare → init holds without help. Not
  SIGKILL: the init relays the app's output through pipes (:mod:`.nsinit`), and SIGSTKFLT
  (its :data:`~.nsinit.END`) makes it kill the namespace's other processes and drain the pipes
  into the spool before it exits, so a daemon ``kill -9`` loses no line held in a pipe.
* ``--pid``: the init (:mod:`.nsinit`) is the namespace's PID 1; when it exits the kernel
  SIGKILLs every other process in the namespace (pid_namespaces(7)) — setsid, double forks and
  all, with or without a cgroup (the init kills them itself first, then drains).
* ``--mount-proc``: a mount namespace with a fresh /proc of that PID namespace, so a container
  sees only its own processes (not another task's /proc/PID/environ and its credentials token).
* ``--map-current-user`` (non-root only): a user namespace, without which an unprivileged user
  may not create the other two.

Namespaces are per container, as Fargate's default (``pidMode`` unset): the containers of a
task do not see each other's processes. :func:`probe` runs the chain once when the backend
starts; if it does not work (or ``ECSLOCAL_PID_NAMESPACE=off``), containers run as plain
process groups and :attr:`NamespaceMode.reason` says why.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INIT = str(Path(__file__).with_name("nsinit.py"))
#: The init's "end the container, keep its output" (nsinit.END; not imported: nsinit is a
#: script run by path). unshare's --kill-child takes the name, the daemon and reaper the number.
END_NAME = "STKFLT"
END = signal.SIGSTKFLT


@dataclass(frozen=True)
class NamespaceMode:
    #: PID + mount namespaces (private /proc) per container are in force.
    enabled: bool
    #: Why (or why not), for the ``serve`` ready line.
    reason: str
    #: A user namespace too (non-root).
    user: bool = False
    #: Absolute paths of setpriv, unshare and nsenter, found on the daemon's PATH: the
    #: container's own PATH (its environment) must not decide which tools wrap it.
    tools: dict[str, str] = field(default_factory=dict)

    def _tool(self, name: str) -> str:
        return self.tools.get(name, name)

    def wrap(self, argv: list[str], report_fd: int) -> list[str]:
        """The command line that runs ``argv`` as the app of a fresh namespace."""
        return [*self._unshare(), sys.executable, "-I", "-S", INIT, str(report_fd), *argv]

    def _unshare(self) -> list[str]:
        flags = ["--pid", "--fork", f"--kill-child={END_NAME}", "--mount-proc"]
        if self.user:
            flags.append("--map-current-user")
        return [
            self._tool("setpriv"),
            "--pdeathsig",
            "KILL",
            "--",
            self._tool("unshare"),
            *flags,
            "--",
        ]

    def enter(self, init_pid: int, argv: list[str], cwd: str) -> list[str]:
        """Run ``argv`` inside the namespaces of the container whose init is ``init_pid``.

        Entering a mount namespace moves the working directory to its root, so it is set
        again (``--wd``); the file system is the host's in either namespace."""
        flags = ["-t", str(init_pid), "--pid", "--mount", f"--wd={cwd}"]
        if self.user:
            flags += ["--user", "--preserve-credentials"]
        return [self._tool("nsenter"), *flags, "--", *argv]


def probe() -> NamespaceMode:
    """Check once, at backend start, that the namespace chain works on this machine."""
    if os.environ.get("ECSLOCAL_PID_NAMESPACE", "on").lower() in ("off", "0", "false", "no"):
        return NamespaceMode(False, "no PID namespace (ECSLOCAL_PID_NAMESPACE=off)")
    found = {tool: shutil.which(tool) for tool in ("setpriv", "unshare", "nsenter")}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        return NamespaceMode(False, f"no PID namespace ({', '.join(missing)} not found)")
    tools = {tool: str(Path(path).resolve()) for tool, path in found.items() if path}
    user = os.geteuid() != 0
    mode = NamespaceMode(True, "", user=user, tools=tools)
    # The chain alone (a few ms): the init is this same interpreter running a stdlib script.
    try:
        done = subprocess.run(
            [*mode._unshare(), "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return NamespaceMode(False, f"no PID namespace (unshare failed: {exc})")
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        why = detail[-1] if detail else f"exit {done.returncode}"
        return NamespaceMode(False, f"no PID namespace (unshare failed: {why})")
    how = "unshare, user namespace" if user else "unshare"
    return NamespaceMode(
        True, f"PID+mount namespaces per container, private /proc ({how})", user, tools
    )


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return []


def parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class StartedInNamespace:
    """A container's command as it started in its namespaces (see :mod:`.namespaces`)."""

    mode: NamespaceMode
    #: The exit code of the ``unshare`` process (the container's, as its init exits with it).
    exit_code: asyncio.Future[int]
    failed: bool = False
    #: Why the app's exec failed (from the init's report), None if unknown.
    errno: int | None = None
    #: The namespace's init on the host, a pidfd on it, its identity; None once it is gone.
    init_pid: int | None = None
    init_pidfd: int = -1
    init_identity: dict[str, Any] = field(default_factory=dict)
    #: The container's command (the init's child) on the host.
    app_pid: int | None = None
    #: Done once the init has reported (the fields above are then final).
    ready: asyncio.Future[None] | None = None
    #: Signals asked for before the init was known, sent once it is.
    pending: list[int] = field(default_factory=list)


async def read_report(fd: int) -> bytes:
    """One line from the pipe ``fd`` (without its newline), or what came before end-of-file;
    then ``fd`` is closed. ``unshare`` keeps the write end open while it runs, so the init's
    report is a line, and end-of-file means the chain exited before the init reported."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 256)
        except BlockingIOError:
            return
        data.extend(chunk)
        if chunk and b"\n" not in data:
            return
        loop.remove_reader(fd)
        done.set_result(bytes(data).split(b"\n", 1)[0])

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        if not done.done():
            loop.remove_reader(fd)
        os.close(fd)


def exec_error(argv0: str, path: str | None, cwd: str | None) -> OSError | None:
    """The error execvp(argv0) would meet (ENOENT, EACCES), None if it would find a file it
    may execute. Relative names resolve against ``cwd``; a bad ``cwd`` is left to Popen,
    whose chdir fails first, as runc's does."""
    base = cwd or os.getcwd()
    if cwd and not os.path.isdir(cwd):
        return None
    if "/" in argv0:
        candidates = [os.path.join(base, argv0)]
    else:
        candidates = [os.path.join(base, d, argv0) for d in (path or os.defpath).split(":")]
    denied = False
    for full in candidates:
        if not os.path.exists(full):
            continue
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return None
        denied = True
    code = errno.EACCES if denied else errno.ENOENT
    return OSError(code, os.strerror(code), argv0)
