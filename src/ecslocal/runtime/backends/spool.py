"""Container output spooled to files, so a daemon crash loses no line.

A container's stdout and stderr do not go to the daemon but to files under
``<data dir>/spool/<task id>/<runtime id>.<stdout|stderr>`` (0600 in a 0700 directory: output
can hold secrets), opened ``O_APPEND`` and handed to the container's first process as its
descriptors 1 and 2. With PID namespaces that is the namespace's init, which relays the
command's output pipes into them (:mod:`.nsinit`: a pipe cannot be truncated by a reopen of
/dev/stderr, and the init drains it before it exits, a daemon ``kill -9`` included), as dockerd
copies a container's FIFOs into one ``json-file`` per container; without namespaces the command
writes them itself. Whatever a container wrote is on disk whether or not the daemon is alive.

The daemon follows each file with inotify on its event loop (``IN_MODIFY``: read what was
appended; ``IN_CLOSE_WRITE``: read, and end-of-file where the backend cannot tell the
container's end otherwise — see :attr:`SpoolFollower.eof_on_close`), splits
lines as it did for pipes (16 KiB at most — Docker splits longer ones —, ``\\r`` stripped, a final
unterminated line emitted at end-of-file) and stamps each line when it reads it. The byte offset
after each line travels with it to :class:`~ecslocal.runtime.logs.LogRouter`, which commits the
offset in the same SQLite transaction as the events (table ``log_spools``): the store always
knows exactly which bytes it holds.

After a crash, :meth:`Spool.recover` reads each spool left behind from its stored offset. Those
lines were written before the crash but read after it; they are stamped with the file's last
modification time (no line in it was written later), or the last stored line's timestamp of
that stream if that is later, so they never sort before lines stored earlier.

While a container runs, what is stored is released from its spool
(``fallocate(FALLOC_FL_PUNCH_HOLE)``: offsets stay, the blocks go), so a chatty long-running
container does not keep its output on disk twice; on a file system without hole punching the
spool keeps everything until the end. A spool is deleted once every byte of it is stored and
its container is gone; its ``log_spools`` row goes in the next transaction, so a crash between
the two never re-reads a deleted file's bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ecslocal.clock import Clock
from ecslocal.runtime.backends.inotify import (
    IN_CLOSE_WRITE,
    IN_MODIFY,
    Inotify,
    InotifyUnavailable,
)
from ecslocal.runtime.logs import LogRouter, awslogs_destination
from ecslocal.store import Store

log = logging.getLogger("ecslocal.spool")

MAX_LINE = 16 * 1024  # Docker splits log lines longer than 16 KiB
READ_CHUNK = 256 * 1024  # what one read hands on before yielding to the loop
POLL_SECONDS = 0.05  # only where inotify is unavailable (no instance left for this user)
PUNCH_BYTES = 1024 * 1024  # release stored output from a spool in steps of at least this
_FALLOC_FL_KEEP_SIZE = 0x01  # linux/falloc.h
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def punch_hole(fd: int, length: int) -> None:
    """Free the blocks of the first ``length`` bytes of ``fd`` (its size stays)."""
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    if _libc.fallocate(fd, mode, 0, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


#: (source, timestamp in ms, line), as the backend's LogCallback.
LineCallback = Callable[[str, int, str], None]


class LineSplitter:
    """Splits a byte stream into log lines; ``consumed`` counts the bytes of emitted lines."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.consumed = 0

    def feed(self, data: bytes) -> list[tuple[str, int]]:
        """The complete lines in ``data`` (with what came before), each with ``consumed``
        after it."""
        self.buffer += data
        out: list[tuple[str, int]] = []
        while True:
            nl = self.buffer.find(b"\n")
            if nl < 0:
                if len(self.buffer) >= MAX_LINE:
                    out.append(self._take(MAX_LINE, MAX_LINE))
                    continue
                return out
            out.append(self._take(nl, nl + 1))

    def rest(self) -> list[tuple[str, int]]:
        """At end-of-file: the unterminated last line, if any."""
        return [self._take(len(self.buffer), len(self.buffer))] if self.buffer else []

    def _take(self, end: int, skip: int) -> tuple[str, int]:
        line = bytes(self.buffer[:end]).decode("utf-8", "replace").rstrip("\r")
        del self.buffer[:skip]
        self.consumed += skip
        return line, self.consumed


class SpoolFollower:
    """Reads one spool file from ``offset`` and hands its lines on, with their offsets."""

    def __init__(
        self,
        spool: Spool,
        name: str,
        task_id: str,
        container: str,
        source: str,
        offset: int,
        on_log: LineCallback,
        timestamp: int | None = None,
    ) -> None:
        self.spool = spool
        self.name = name
        self.path = spool.directory / name
        self.task_id, self.container, self.source = task_id, container, source
        self.on_log = on_log
        self._timestamp = timestamp  # fixed stamp for lines recovered after a crash
        self._base = offset
        self._read_offset = offset
        self._splitter = LineSplitter()
        # Read-write only to punch holes; opened before the container's descriptor, and
        # closed after the watch is gone, so it never stands for the container's close.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        self._punched = 0
        self._wd: int | None = None
        self._again: asyncio.Handle | None = None
        self._loop = asyncio.get_running_loop()
        #: Resolved once the file is at end-of-file and every line is handed on.
        self.closed: asyncio.Future[None] = self._loop.create_future()
        #: Whether IN_CLOSE_WRITE ends the file. It fires when any open description of it is
        #: released, so a process that reopens /dev/stdout and closes it fires it too: the
        #: backend turns this off where it knows the container's end otherwise.
        self.eof_on_close = True

    def on_event(self, mask: int) -> None:
        if self.closed.done() or self._fd < 0:
            return
        if mask & IN_CLOSE_WRITE and self.eof_on_close:
            self.finish()
        else:
            self._read()

    def _read(self, bounded: bool = True) -> None:
        self._again = None
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            if os.fstat(self._fd).st_size < self._read_offset:
                # Truncated: something reopened /dev/stdout with O_TRUNC (`echo x >/dev/stdout`
                # on a file: only without PID namespaces, where no init relays a pipe). What it
                # wrote from 0 is read from 0; the container's own descriptor appends, so its
                # later lines follow.
                log.warning(
                    "%s was truncated by the container: reading it from the start", self.path
                )
                self._base, self._read_offset, self._punched = 0, 0, 0
                self._splitter = LineSplitter()
        while True:
            try:
                data = os.pread(self._fd, READ_CHUNK, self._read_offset)
            except OSError as exc:
                log.warning("cannot read %s: %s", self.path, exc.strerror)
                return
            if not data:
                return
            self._read_offset += len(data)
            self._deliver(self._splitter.feed(data))
            if bounded and len(data) == READ_CHUNK:
                # More is waiting: let the loop breathe between chunks.
                self._again = self._loop.call_soon(self._read)
                return

    def _deliver(self, lines: list[tuple[str, int]]) -> None:
        router = self.spool.logs
        for line, consumed in lines:
            # The offset first: a flush the line triggers commits both or neither.
            router.advance(
                self.name, self.task_id, self.container, self.source, self._base + consumed
            )
            stamp = self._timestamp
            if stamp is None:
                stamp = int(self.spool.clock.time() * 1000)
            self.on_log(self.source, stamp, line)

    def finish(self) -> None:
        """End-of-file (every writer is gone, or the drain gave up): read the rest, emit the
        unterminated last line, and hand the file over for deletion once stored."""
        if self.closed.done() or self._fd < 0:
            return
        if self._again is not None:
            self._again.cancel()
        self._read(bounded=False)
        self._deliver(self._splitter.rest())
        self.spool.stop_following(self)
        # Closed exactly once, before anything below can raise: a second finish() (the drain's
        # timeout calls it again when the first did not complete) must not close whatever
        # descriptor has taken this number since — another container's pidfd, whose exit
        # would then never be seen.
        fd, self._fd = self._fd, -1
        os.close(fd)
        self.spool.logs.advance(
            self.name, self.task_id, self.container, self.source, self._read_offset
        )
        self.spool.logs.finished(self.name, self.path)
        self.closed.set_result(None)

    def release(self, stored: int) -> None:
        """Bytes up to ``stored`` are committed: give their blocks back to the file system."""
        if self.closed.done() or self._fd < 0 or stored - self._punched < PUNCH_BYTES:
            return
        end = stored - stored % 4096
        try:
            punch_hole(self._fd, end)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                log.warning("cannot release stored output of %s: %s", self.path, exc.strerror)
            self._punched = 1 << 62  # not on this file system: keep the file whole
            return
        self._punched = end

    def watch_descriptor(self, wd: int) -> None:
        self._wd = wd

    @property
    def wd(self) -> int | None:
        return self._wd


class Spool:
    """The spool directory: opens a container's output files and recovers them after a crash."""

    def __init__(self, directory: Path, logs: LogRouter, clock: Clock) -> None:
        self.directory = directory
        self.logs = logs
        self.clock = clock
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o700)
        self._inotify: Inotify | None = None
        self._polled: set[SpoolFollower] = set()
        self._poll: asyncio.TimerHandle | None = None
        self._followers: dict[int, SpoolFollower] = {}
        self._by_name: dict[str, SpoolFollower] = {}
        logs.on_commit = self._committed

    def _notifier(self) -> Inotify | None:
        if self._inotify is None:
            try:
                self._inotify = Inotify(asyncio.get_running_loop())
            except InotifyUnavailable as exc:
                log.warning("%s: following container output every %s s", exc, POLL_SECONDS)
                return None
            self._inotify.on_overflow = self._poke_all
        return self._inotify

    def _poke_all(self) -> None:
        for follower in list(self._followers.values()) + list(self._polled):
            follower.on_event(0)

    def open(
        self, task_id: str, runtime_id: str, container: str, source: str, on_log: LineCallback
    ) -> tuple[int, SpoolFollower]:
        """(descriptor for the container to write, follower reading it) for one source."""
        task_dir = self.directory / task_id
        task_dir.mkdir(mode=0o700, exist_ok=True)
        name = f"{task_id}/{runtime_id}.{source}"
        write_fd = os.open(
            self.directory / name,
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC,
            0o600,
        )
        try:
            follower = SpoolFollower(self, name, task_id, container, source, 0, on_log)
            notifier = self._notifier()
            wd = None
            if notifier is not None:
                try:
                    wd = notifier.watch(
                        str(follower.path), IN_MODIFY | IN_CLOSE_WRITE, follower.on_event
                    )
                except OSError as exc:  # ENOSPC: fs.inotify.max_user_watches reached
                    log.warning("%s: following %s every %s s", exc, follower.path, POLL_SECONDS)
            if wd is not None:
                follower.watch_descriptor(wd)
                self._followers[wd] = follower
            else:
                # Polled, a follower never sees the last close: the container's drain timeout
                # (process.py DRAIN_SECONDS) ends it.
                self._polled.add(follower)
                self._schedule_poll()
        except BaseException:
            os.close(write_fd)
            raise
        self._by_name[name] = follower
        # Known to the store from the start, so a restart finds its container by name.
        self.logs.advance(name, task_id, container, source, 0)
        return write_fd, follower

    def _schedule_poll(self) -> None:
        if self._poll is None and self._polled:
            self._poll = asyncio.get_running_loop().call_later(POLL_SECONDS, self._tick)

    def _tick(self) -> None:
        self._poll = None
        for follower in list(self._polled):
            follower.on_event(0)
        self._schedule_poll()

    def _committed(self, offsets: dict[str, int]) -> None:
        for name, offset in offsets.items():
            follower = self._by_name.get(name)
            if follower is not None:
                follower.release(offset)

    def stop_following(self, follower: SpoolFollower) -> None:
        self._by_name.pop(follower.name, None)
        self._polled.discard(follower)
        if follower.wd is not None and self._inotify is not None:
            self._followers.pop(follower.wd, None)
            self._inotify.unwatch(follower.wd)

    # -- after a crash ----------------------------------------------------------------------
    def recover(self, store: Store) -> int:
        """Store what spools a previous daemon left hold beyond their stored offsets; returns
        the number of lines recovered. Call once its containers are gone (after the agent's
        ``recover``)."""
        known = store.spool_offsets()
        recovered = 0
        for task_dir in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            for path in sorted(task_dir.iterdir()):
                name = f"{task_dir.name}/{path.name}"
                row = known.pop(name, None)
                recovered += self._recover_one(store, name, path, row)
            with contextlib.suppress(OSError):
                task_dir.rmdir()
        self.logs.flush()
        if known:  # rows whose files are gone (deleted just before a crash)
            self.logs.forget(list(known))
            self.logs.flush()
        return recovered

    def _recover_one(
        self, store: Store, name: str, path: Path, row: tuple[str, str, str, int] | None
    ) -> int:
        task_id = name.split("/", 1)[0]
        runtime_id, _, source = path.name.rpartition(".")
        found = store.get_task(task_id)
        task = found[0] if found else None
        container = row[1] if row else None
        if container is None and task is not None:
            container = next(
                (c["name"] for c in task["containers"] if c.get("runtimeId") == runtime_id), None
            )
        if task is None or container is None or source not in ("stdout", "stderr"):
            log.warning("spool %s belongs to no known task: removed", path)
            path.unlink(missing_ok=True)
            return 0
        group, stream = self._destination(store, task, container, task_id, runtime_id)
        stamp = max(
            store.last_log_timestamp(task_id, container, source),
            int(path.stat().st_mtime * 1000),
        )
        count = 0

        def on_log(src: str, ts: int, line: str) -> None:
            nonlocal count
            count += 1
            self.logs.append(task_id, container, src, group, stream, ts, line)

        offset = row[3] if row else 0
        try:
            SpoolFollower(self, name, task_id, container, source, offset, on_log, stamp).finish()
        except OSError as exc:
            log.warning("cannot read spool %s: %s", path, exc.strerror)
        return count

    @staticmethod
    def _destination(
        store: Store, task: dict[str, object], container: str, task_id: str, runtime_id: str
    ) -> tuple[str | None, str | None]:
        arn = str(task.get("taskDefinitionArn", ""))
        family, _, revision = arn.rsplit("/", 1)[-1].partition(":")
        found = store.get_task_definition(family, int(revision)) if revision.isdigit() else None
        if found is None:
            return None, None
        for cdef in found[0].get("containerDefinitions", []):
            if cdef.get("name") == container:
                return awslogs_destination(cdef, task_id, runtime_id)
        return None, None

    def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
