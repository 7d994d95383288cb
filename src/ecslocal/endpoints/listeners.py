"""Listening sockets of their own for a task's endpoints, so that a ``refuse`` fault refuses.

An app that meets a sidecar or an endpoint that is not up yet gets a TCP refusal: the AWS SDK
for Go v2 says ``dial tcp 127.0.0.1:PORT: connect: connection refused``, botocore
``Could not connect to the endpoint URL`` over ``[Errno 111] Connection refused``. A connection
that is accepted and then dropped is another failure (Go: ``EOF``; botocore: "Connection was
closed before we received a valid response"), with other retry rules. So each task gets a
listener for its credentials endpoint, its metadata endpoint and STS (the URLs its containers
are given in their environment), the daemon one for IMDS (one instance metadata service for
every task, as on an instance: EC2-launch containers get its URL in
``AWS_EC2_METADATA_SERVICE_ENDPOINT``), and a ``refuse`` fault that covers one stops it
listening.

Stopping and resuming on the same port: ``shutdown(SHUT_RD)`` on a listening TCP socket makes
Linux leave the LISTEN state (``inet_shutdown`` → ``tcp_disconnect``: the accept queue is reset
and new connections are refused) while the socket keeps its port, *if* the port was bound
explicitly (``SOCK_BINDPORT_LOCK``; a port-0 autobind is given back), and ``listen()`` resumes
on it. Checked on this machine (Linux 6.18): after ``shutdown`` a connect gets
``ECONNREFUSED`` and another ``bind`` to the port ``EADDRINUSE``; after ``listen`` it connects.
So a listener finds a free port with a port-0 probe and binds it explicitly. It sets
``SO_REUSEADDR``: without it ``listen()`` again fails with ``EADDRINUSE`` while connections it
accepted before (open ones, or in ``TIME_WAIT``) still hold the port — also checked here. (The
cost: while refusing, another ``SO_REUSEADDR`` socket could bind that very port; a listener
that cannot listen again says so in the log and tries at the next change.)

Every listener serves the daemon's one aiohttp app (its ``web.Server`` is the protocol factory
of each accepted connection), so the routes, middlewares and shutdown are the same as on the
daemon's main port.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import weakref
from collections.abc import Callable, Iterable

from ecslocal.clock import Clock
from ecslocal.endpoints.faults import Faults

log = logging.getLogger("ecslocal.listeners")

BACKLOG = 128
#: Errors of accept() that are about the machine, not the listener: wait and go on (asyncio's
#: own accept loop does the same).
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ProtocolFactory = Callable[[], asyncio.Protocol]


def url_host(host: str) -> str:
    """The host part of a URL for a socket bound to ``host``: a loopback literal for a
    wildcard (botocore accepts only loopback literals in a plain-http FULL_URI)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def bind_explicit(host: str, attempts: int = 20) -> socket.socket:
    """A TCP socket bound to a free port of ``host``, bound by number (see the module doc)."""
    family, _, _, _, address = socket.getaddrinfo(
        host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    for _ in range(attempts):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(address)
            port = probe.getsockname()[1]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address[0], port, *address[2:]))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:  # taken between the probe and the bind
                continue
            raise
        sock.setblocking(False)
        return sock
    raise OSError(errno.EADDRINUSE, f"no free port on {host} after {attempts} attempts")


class Listener:
    """One listening socket that can stop listening (a refusal) and resume on its port."""

    def __init__(
        self, target: str, task_id: str | None, host: str, factory: ProtocolFactory
    ) -> None:
        self.target = target
        self.task_id = task_id
        self._factory = factory
        self._sock = bind_explicit(host)
        address = self._sock.getsockname()
        self.port: int = address[1]
        self.url = f"http://{url_host(address[0])}:{self.port}"
        self._accepting: asyncio.Task[None] | None = None
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self.listening = False
        self.closed = False

    def listen(self) -> None:
        if self.listening or self.closed:
            return
        try:
            self._sock.listen(BACKLOG)
        except OSError as exc:
            log.error("listener %s:%s cannot listen again: %s", self.target, self.port, exc)
            return
        self.listening = True
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    def refuse(self) -> None:
        """Stop listening: new connections are refused, queued and open ones are closed."""
        if not self.listening:
            return
        self.listening = False
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        try:
            self._sock.shutdown(socket.SHUT_RD)
        except OSError as exc:  # ENOTCONN on kernels that refuse it: close and rebind
            log.warning("listener %s:%s: shutdown failed (%s)", self.target, self.port, exc)
        for transport in list(self._transports):
            transport.abort()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.refuse()
        self.closed = True
        self._sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    log.warning("listener %s:%s: accept: %s", self.target, self.port, exc)
                    await asyncio.sleep(0.1)
                    continue
                if self.listening:
                    log.error("listener %s:%s stopped: %s", self.target, self.port, exc)
                return
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                transport, _ = await loop.connect_accepted_socket(self._factory, conn)
            except OSError as exc:
                conn.close()
                log.debug(
                    "listener %s:%s: connection setup failed: %s", self.target, self.port, exc
                )
                continue
            self._transports.add(transport)


class Listeners:
    """Each task's listeners, each listening exactly while no ``refuse`` fault covers it.

    Re-checked when a fault is added or cleared (:meth:`Faults.watch`) and when the next one
    runs out (a timer on ecslocal's clock).
    """

    def __init__(self, faults: Faults, clock: Clock, host: str) -> None:
        self.faults = faults
        self.clock = clock
        self.host = host
        self._factory: ProtocolFactory | None = None
        #: Task id -> target -> listener.
        self._tasks: dict[str, dict[str, Listener]] = {}
        #: Target -> the daemon's listener for every task (IMDS).
        self._shared: dict[str, Listener] = {}
        self._timer: asyncio.TimerHandle | None = None
        faults.watch(self.sync)

    def serve(self, factory: ProtocolFactory) -> None:
        """What accepted connections are handed to: the daemon's ``web.Server``."""
        self._factory = factory

    def open(self, task_id: str, targets: Iterable[str]) -> dict[str, Listener]:
        if self._factory is None:
            raise RuntimeError("Listeners.serve() was not called")
        opened = self._tasks.setdefault(task_id, {})
        try:
            for target in targets:
                if target not in opened:
                    opened[target] = Listener(target, task_id, self.host, self._factory)
        except BaseException:
            self.close(task_id)
            raise
        # Only the new task's listeners: the others are as the last sync left them (the faults
        # have not changed since, or a sync would have run). Syncing all of them made each
        # RunTask cost a refusing() check per listener of every task still running.
        self._apply(opened.values())
        if self._timer is None:
            self._arm()
        return dict(opened)

    def open_shared(self, target: str) -> Listener:
        """The daemon's one listener for ``target`` (IMDS: one instance metadata service
        answers every task), covered by the faults that name no task."""
        if self._factory is None:
            raise RuntimeError("Listeners.serve() was not called")
        listener = self._shared.get(target)
        if listener is None:
            listener = self._shared[target] = Listener(target, None, self.host, self._factory)
        self.sync()
        return listener

    def close(self, task_id: str) -> None:
        opened = self._tasks.pop(task_id, None)
        if opened is not None:
            for listener in opened.values():
                listener.close()

    def close_all(self) -> None:
        for task_id in list(self._tasks):
            self.close(task_id)
        for listener in self._shared.values():
            listener.close()
        self._shared.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def get(self, task_id: str, target: str) -> Listener | None:
        return self._tasks.get(task_id, {}).get(target)

    def sync(self) -> None:
        """Refuse on the listeners a ``refuse`` fault covers, listen on the others, and look
        again when the next refuse fault runs out."""
        self._apply(self._shared.values())
        for opened in self._tasks.values():
            self._apply(opened.values())
        self._arm()

    def _apply(self, listeners: Iterable[Listener]) -> None:
        for listener in listeners:
            if self.faults.refusing(listener.target, listener.task_id):
                listener.refuse()
            else:
                listener.listen()

    def _arm(self) -> None:
        """The timer that syncs again when the next refuse fault runs out."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        until = self.faults.next_expiry("refuse")
        if until is not None and (self._tasks or self._shared):
            # A millisecond past the end, so that the fault has run out when we look.
            delay = self.clock.real_seconds(until - self.clock.time()) + 0.001
            self._timer = asyncio.get_running_loop().call_later(delay, self.sync)
