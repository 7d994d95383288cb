"""Time warp: a task whose processes see a clock running N times faster, and an ecslocal clock
for that task that runs alike.

The task's processes get libfaketime (``LD_PRELOAD``) with ``FAKETIME="+0 xN"``: every
``clock_gettime``/``gettimeofday``/``time`` they make runs N times faster than real time, and
their sleeps and timeouts are N times shorter — so an SDK's own credential refresh logic runs
unchanged while a 6 h credential lifetime passes in 15 s.

libfaketime measures the speed-up from a start time. Every process started on its own would
take its own start (a child forked a minute into the task would be hours behind its parent),
so the processes of one task share it through libfaketime's shared memory
(``FAKETIME_SHARED="<semaphore> <shared memory>"``, which children inherit). ecslocal creates
that segment for each warped task and writes the start time itself: the task's creation. The
task's :class:`~ecslocal.clock.Clock` (speed N from the same instant) is then the very clock
its processes read, and it is what ecslocal issues and rotates the task's credentials by and
checks the signatures its processes make against.

The layout written is libfaketime 0.9.10's (Debian 12, Ubuntu 22.04/24.04): ``uint64 ticks,
uint64 file_idx`` then the start time as four ``struct timespec`` (realtime, monotonic,
monotonic-raw, boottime). Before the first warped task a probe checks that the installed
library really reads the start time from there; if not, the option says so instead of
running a task on a clock ecslocal does not share.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from ecslocal.clock import Clock

log = logging.getLogger("ecslocal.timewarp")

#: The task tag that asks for a warped clock: its value is the speed-up N (2 to 100000).
TIME_WARP_TAG = "ecslocal:time-warp"
MIN_SPEED, MAX_SPEED = 2.0, 100000.0

SHM_DIR = Path("/dev/shm")  # where glibc's shm_open and sem_open keep their objects
_SHM_SIZE = 4096
_LAYOUT_0_9_10 = struct.Struct("=QQ" + "qq" * 4)
_NS = 1_000_000_000

INSTALL_HINT = (
    "install libfaketime (Debian/Ubuntu: apt-get install libfaketime) or point"
    " ECSLOCAL_LIBFAKETIME at libfaketime.so.1"
)


class TimeWarpUnavailable(Exception):
    """This machine cannot warp a task's clock; the message says why and what to do."""


def find_libfaketime() -> str | None:
    """The libfaketime shared object: ``$ECSLOCAL_LIBFAKETIME``, else where distributions
    install it. The multi-threaded build is preferred (it serialises its own state)."""
    configured = os.environ.get("ECSLOCAL_LIBFAKETIME")
    if configured:
        return configured if Path(configured).is_file() else None
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for directory in (
        f"/usr/lib/{multiarch}/faketime",
        "/usr/lib/faketime",
        "/usr/lib64/faketime",
        "/usr/local/lib/faketime",
        "/usr/local/lib",
    ):
        for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
            path = Path(directory, name)
            if path.is_file():
                return str(path)
    return None


def parse_speed(value: str) -> float:
    """The tag's value as a speed-up; ValueError with ECS-style wording otherwise."""
    try:
        speed = float(value)
    except ValueError:
        speed = float("nan")
    if not MIN_SPEED <= speed <= MAX_SPEED:  # also false for nan
        raise ValueError(
            f"Tag {TIME_WARP_TAG} must be a speed-up from {MIN_SPEED:g} to {MAX_SPEED:g}"
            f" (how many times faster the task's clock runs), not '{value}'."
        )
    return speed


class _Semaphores:
    """glibc's POSIX named semaphores, which libfaketime locks its shared memory with (they
    are removed as files, like the shared memory: ``/dev/shm/sem.<name>``)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "sem_open"):  # glibc before 2.34 keeps them in libpthread
            libc = ctypes.CDLL(ctypes.util.find_library("pthread"), use_errno=True)
        self._open = libc.sem_open
        self._open.restype = ctypes.c_void_p
        self._open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
        self._close = libc.sem_close
        self._close.argtypes = [ctypes.c_void_p]

    def create(self, name: str) -> None:
        handle = self._open(name.encode(), os.O_CREAT | os.O_EXCL, 0o600, 1)
        if not handle:  # SEM_FAILED
            err = ctypes.get_errno()
            raise OSError(err, f"sem_open({name}): {os.strerror(err)}")
        self._close(handle)


class TimeWarp:
    """One task's warped clock and the shared memory its processes read it from."""

    def __init__(self, task_id: str, clock: Clock, env: dict[str, str]) -> None:
        self.task_id = task_id
        self.clock = clock
        #: What every process of the task gets (merged into each container's environment).
        self.env = env


class TimeWarps:
    """Creates and removes the warped clocks of this daemon's tasks."""

    def __init__(self) -> None:
        self.library = find_libfaketime()
        self._active: dict[str, TimeWarp] = {}
        self._semaphores: _Semaphores | None = None
        self._probed: str | None = None  # "" once the probe passed, else why it failed

    def describe(self) -> str:
        """One line for ``ecslocal serve``: can tasks have a warped clock here?"""
        if self.library:
            return f"time warp (tag {TIME_WARP_TAG}): libfaketime at {self.library}"
        return f"time warp (tag {TIME_WARP_TAG}) unavailable: {INSTALL_HINT}"

    def clocks(self) -> list[Clock]:
        """The clocks of the warped tasks now running."""
        return [w.clock for w in self._active.values()]

    def create(self, task_id: str, speed: float, origin: float | None = None) -> TimeWarp:
        """A warped clock for ``task_id``, starting at ``origin`` (wall-clock time, default
        now) and running ``speed`` times faster; raises :class:`TimeWarpUnavailable`."""
        self._check()
        assert self.library is not None and self._semaphores is not None
        name = f"/ecslocal-warp-{task_id}"
        clock = self._share(name, speed, origin)
        env = {
            "LD_PRELOAD": self.library,
            "FAKETIME": f"+0 x{speed:g}",
            "FAKETIME_SHARED": f"{name} {name}",
        }
        warp = TimeWarp(task_id, clock, env)
        self._active[task_id] = warp
        log.info("task %s: clock runs %gx (libfaketime %s)", task_id, speed, self.library)
        return warp

    def close(self, task_id: str) -> None:
        """The task has stopped: remove its shared memory (processes that still map it keep
        their mapping)."""
        self._active.pop(task_id, None)
        self.remove(task_id)

    def remove(self, task_id: str) -> None:
        """Remove whatever is left of ``task_id``'s warp (also after a daemon crash)."""
        name = f"ecslocal-warp-{task_id}"
        for path in (SHM_DIR / name, SHM_DIR / f"sem.{name}"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- the shared start time ---------------------------------------------------------------
    def _share(self, name: str, speed: float, origin: float | None) -> Clock:
        """Create the semaphore and shared memory ``name`` holding a start time; the clock
        that agrees with libfaketime's view of it."""
        assert self._semaphores is not None
        wall = time.time() if origin is None else origin
        # The other clocks, read as close together as possible and shifted to ``wall``.
        lag = time.time() - wall
        mono = time.clock_gettime(time.CLOCK_MONOTONIC) - lag
        mono_raw = time.clock_gettime(time.CLOCK_MONOTONIC_RAW) - lag
        boot = time.clock_gettime(time.CLOCK_BOOTTIME) - lag
        fields: list[int] = [0, 0]
        for t in (wall, mono, mono_raw, boot):
            ns = round(t * _NS)
            fields += [ns // _NS, ns % _NS]
        data = _LAYOUT_0_9_10.pack(*fields).ljust(_SHM_SIZE, b"\0")
        path = SHM_DIR / name[1:]
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        try:
            self._semaphores.create(name)
        except OSError:
            path.unlink()
            raise
        return Clock(speed, origin=(wall, mono))

    def _check(self) -> None:
        if self.library is None:
            raise TimeWarpUnavailable(
                f"Tag {TIME_WARP_TAG} needs libfaketime, which this machine does not have:"
                f" {INSTALL_HINT}."
            )
        if self._probed is None:
            self._probed = self._probe()
        if self._probed:
            raise TimeWarpUnavailable(f"Tag {TIME_WARP_TAG}: {self._probed}")

    def _probe(self) -> str:
        """'' if the library reads the start time ecslocal writes, else what went wrong: a
        process started with a start time 1000 s ago at speed 2 must see now + 1000 s."""
        if not SHM_DIR.is_dir():
            return f"time warp needs POSIX shared memory in {SHM_DIR}, which is missing."
        try:
            self._semaphores = _Semaphores()
        except (OSError, AttributeError) as exc:
            return f"time warp needs POSIX named semaphores (sem_open): {exc}."
        probe_id = f"probe-{os.getpid()}"
        name = f"/ecslocal-warp-{probe_id}"
        self.remove(probe_id)
        try:
            self._share(name, 2.0, time.time() - 1000)
        except OSError as exc:
            return f"time warp could not create its shared memory: {exc}."
        try:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LD_PRELOAD": str(self.library),
                "FAKETIME": "+0 x2",
                "FAKETIME_SHARED": f"{name} {name}",
            }
            before = time.time()
            out = subprocess.run(
                [sys.executable, "-I", "-S", "-c", "import time; print(time.time())"],
                env=env,
                capture_output=True,
                text=True,
                timeout=20,
            )
            seen = float(out.stdout.strip() or "nan")
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return f"the libfaketime probe failed to run: {exc}."
        finally:
            self.remove(probe_id)
        if not before + 990 <= seen <= time.time() + 1010:
            return (
                f"{self.library} does not take the start time ecslocal shares with the task's"
                " processes (libfaketime 0.9.10's shared-memory layout); its processes and"
                f" ecslocal would not share one clock. {INSTALL_HINT}."
                + (f" Probe output: {out.stderr.strip()[:200]}" if out.stderr.strip() else "")
            )
        return ""
