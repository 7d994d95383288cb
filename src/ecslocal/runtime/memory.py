"""Memory limits and process containment.

Three ways, chosen once when the daemon starts (``Config.memory_enforcement``):

* ``cgroup-v2`` / ``cgroup-v1``: each container gets its own memory cgroup (inside one per task),
  with ``memory.max`` / ``memory.limit_in_bytes`` set from the container's ``memory`` and the
  task's ``memory``. The kernel's OOM killer enforces the limit; the cgroup's ``oom_kill``
  counter tells the agent the container was OOM-killed. The cgroup also lets the agent kill
  every process of a container, even one that left its process group. Needs root (or a
  delegated cgroup).
* ``rss``: no cgroup; a watchdog sums the resident set size of the container's process tree
  every :data:`RSS_POLL_SECONDS` and SIGKILLs the tree when it goes over the limit. Coarser: a
  fast allocation can overshoot between two polls.
* ``off``: limits are not enforced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

RSS_POLL_SECONDS = 0.1
_PAGE = os.sysconf("SC_PAGE_SIZE")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupGroup:
    """One container's cgroup (v1 memory hierarchy or v2 unified)."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    def attach_tree(self, pid: int) -> None:
        """Move ``pid`` and every descendant it has forked so far into this cgroup.

        ``pid`` moves first, so whatever it forks afterwards is born inside; then its
        descendants are swept until a pass finds none left outside (a child forked while the
        sweep ran is caught by the next pass)."""
        procs = self.path / "cgroup.procs"
        moved: set[int] = set()
        pending = [pid]
        while pending:
            for p in pending:
                moved.add(p)
                try:
                    procs.write_text(str(p))
                except OSError:  # exited meanwhile
                    continue
            pending = [p for p in descendants(pid) if p not in moved]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def oom_kills(self) -> int:
        """OOM kills counted in this cgroup and its task-level parent."""
        total = 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for path in (self.path / name, self.path.parent / name):
            with contextlib.suppress(OSError):
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        total += int(value)
        return total

    def usage_bytes(self) -> int:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return 0

    def kill_all(self) -> bool:
        """SIGKILL every process in the cgroup; True if there were any."""
        found = False
        if self.version == 2 and (self.path / "cgroup.kill").exists():
            found = bool(self.pids())
            with contextlib.suppress(OSError):
                (self.path / "cgroup.kill").write_text("1")
            return found
        # runtime/reaper.py kills a cgroup the same way on purpose: the reaper imports nothing
        # from ecslocal, so that it starts fast and outlives whatever broke the daemon.
        for _ in range(20):  # processes may fork while we kill; loop until the group is empty
            pids = self.pids()
            if not pids:
                break
            found = True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        return found

    def remove(self) -> None:
        """Remove the container's cgroup, and the task's when it is the last one."""
        for path in (self.path, self.path.parent):
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Busy: processes still exiting, or (for the task level) siblings remain.
                    if path != self.path:
                        break
                    self.kill_all()
                    time.sleep(0.01)


class MemoryControl:
    """Creates per-container groups in the mode chosen at start."""

    def __init__(self, requested: str = "auto", namespace: str = "ecslocal") -> None:
        self.base: Path | None = None
        self.version = 0
        self.mode = "off" if requested == "off" else "rss"
        if requested in ("auto", "cgroup"):
            found = _find_cgroup_base(namespace)
            if found:
                self.base, self.version = found
                self.mode = f"cgroup-v{self.version}"
            elif requested == "cgroup":
                raise RuntimeError(
                    "memory enforcement 'cgroup' was requested but no writable memory cgroup was"
                    " found (needs root, or a delegated cgroup)"
                )

    def describe(self) -> str:
        if self.base is not None:
            return f"{self.mode} ({self.base})"
        if self.mode == "rss":
            return f"rss watchdog (every {RSS_POLL_SECONDS:g}s; no writable memory cgroup)"
        return "off (memory limits not enforced)"

    def create(
        self, task_id: str, container: str, memory_mib: int | None, task_memory_mib: int | None
    ) -> CgroupGroup | None:
        if self.base is None:
            return None
        task_dir = self.base / task_id
        task_dir.mkdir(exist_ok=True)
        if self.version == 2:
            _enable_memory_controller(task_dir)
        if task_memory_mib:
            _set_limit(task_dir, task_memory_mib, self.version)
        path = task_dir / container
        path.mkdir(exist_ok=True)
        if memory_mib:
            _set_limit(path, memory_mib, self.version)
        return CgroupGroup(path, self.version)

    def remove_task(self, task_id: str) -> None:
        """Remove the task's cgroup directory once its containers' are gone (a safety net:
        the last container's :meth:`CgroupGroup.remove` normally does it)."""
        if self.base is None:
            return
        task_dir = self.base / task_id
        with contextlib.suppress(OSError):
            for child in task_dir.iterdir():
                if child.is_dir():
                    CgroupGroup(child, self.version).kill_all()
                    with contextlib.suppress(OSError):
                        child.rmdir()
            task_dir.rmdir()

    def group_at(self, path: str) -> CgroupGroup:
        return CgroupGroup(Path(path), self.version or 1)


def _set_limit(path: Path, mib: int, version: int) -> None:
    limit = str(mib * 1024 * 1024)
    if version == 2:
        (path / "memory.max").write_text(limit)
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
        return
    (path / "memory.limit_in_bytes").write_text(limit)
    with contextlib.suppress(OSError):  # pages used before the move are charged here too
        (path / "memory.move_charge_at_immigrate").write_text("3")
    with contextlib.suppress(OSError):  # only where swap accounting is on
        (path / "memory.memsw.limit_in_bytes").write_text(limit)


def _enable_memory_controller(path: Path) -> None:
    with contextlib.suppress(OSError):
        (path / "cgroup.subtree_control").write_text("+memory")


def is_container_cgroup(path: str, namespace: str = "ecslocal") -> bool:
    """True if ``path`` is where :meth:`MemoryControl.create` puts a container's cgroup
    (``<v1 memory or v2 root>/<namespace>/<task>/<container>``): a recovery record naming any
    other cgroup (``…/system.slice``) is not killed, whatever mode this daemon runs in."""
    if os.path.normpath(path) != path or not os.path.isabs(path):
        return False
    bases = (CGROUP_ROOT / "memory" / namespace, CGROUP_ROOT / namespace)
    return Path(path).parent.parent in bases


def _find_cgroup_base(namespace: str) -> tuple[Path, int] | None:
    """A writable place for ecslocal's cgroups: (path, version), or None."""
    v1 = CGROUP_ROOT / "memory"
    if (v1 / "memory.limit_in_bytes").exists() or (v1 / "cgroup.procs").exists():
        base = v1 / namespace
        if _try_mkdir(base):
            return base, 1
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        if "memory" in controllers:
            with contextlib.suppress(OSError):
                (CGROUP_ROOT / "cgroup.subtree_control").write_text("+memory")
            base = CGROUP_ROOT / namespace
            if _try_mkdir(base):
                _enable_memory_controller(base)
                if "memory" in (base / "cgroup.controllers").read_text().split():
                    return base, 2
    return None


def _try_mkdir(path: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
        probe = path / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        probe.rmdir()
        return True
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """The children, grandchildren, ... of ``pid`` (via /proc/PID/task/TID/children)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    kids = [int(c) for c in f.read().split()]
                found.extend(kids)
                stack.extend(kids)
        except (OSError, ValueError):
            continue
    return found


def session_members(sid: int) -> list[int]:
    """Every process of session ``sid`` (field 6 of /proc/PID/stat, proc(5)): without a PID
    namespace, what a container started stays in the session its leader opened
    (``start_new_session``) even once orphaned and re-parented, unless it calls setsid."""
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) == sid:
                found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of the processes ``pids`` (those gone meanwhile count 0)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_seconds(pids: Iterable[int], *, reaped_by: int | None = None) -> float:
    """User + system CPU time of ``pids`` (each with its reaped children), plus the reaped
    children of ``reaped_by`` (the namespace's init, which reaps the orphans; its own time is
    ecslocal's, not the container's)."""
    ticks = 0
    wanted = [(p, 11, 15) for p in pids]
    if reaped_by is not None:
        wanted.append((reaped_by, 13, 15))
    for p, first, last in wanted:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            ticks += sum(int(x) for x in fields[first:last])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")
