"""Linux inotify through ctypes, read on the event loop (no thread, no polling).

``inotify(7)``: ``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch``; each event read
from the descriptor is ``struct inotify_event {int wd; uint32_t mask, cookie, len; char
name[len];}``. ``IN_CLOSE_WRITE`` comes when an open file description that was opened for
writing is released (the kernel sends it from its final ``fput``): every process holding the
container's own descriptors being gone, but also a process that opened the file anew (through
``/dev/stdout``) and closed it — so it is end-of-file only where nothing else can tell.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from collections.abc import Callable

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")

Handler = Callable[[int], None]


class InotifyUnavailable(OSError):
    pass


class Inotify:
    """One inotify instance; ``watch(path, handler)`` calls ``handler(mask)`` per event."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        self._loop = loop
        self._handlers: dict[int, Handler] = {}
        #: Called for every watch when the kernel's event queue overflowed (events were lost).
        self.on_overflow: Callable[[], None] | None = None
        loop.add_reader(fd, self._read)

    def watch(self, path: str, mask: int, handler: Handler) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        self._handlers[wd] = handler
        return int(wd)

    def unwatch(self, wd: int) -> None:
        if self._handlers.pop(wd, None) is not None:
            self._libc.inotify_rm_watch(self.fd, wd)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return
            raise
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            pos += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                if self.on_overflow is not None:
                    self.on_overflow()
                continue
            handler = self._handlers.get(wd)
            if handler is not None and not mask & IN_IGNORED:
                handler(mask)

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
        self._handlers.clear()
