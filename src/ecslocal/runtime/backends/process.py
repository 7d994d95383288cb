"""The process backend (embedded default): each container is a local process group.

No image is unpacked: the container's entryPoint + command run on the host, with the task's
environment and working directory, in a session and process group of their own. Where the
machine allows it each container also gets a memory cgroup (see :mod:`ecslocal.runtime.memory`)
that enforces its limit and lets the agent kill every process it started.

Exit is detected with a pidfd on the event loop (no thread per child); stdout and stderr go to
spool files the loop follows (:mod:`ecslocal.runtime.backends.spool`: nothing is lost if the
daemon dies; with PID namespaces the init relays the command's pipes into them), or to pipes
without a spool, and are delivered line by line with a timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from ecslocal.clock import Clock
from ecslocal.runtime.backends.base import (
    CannotStartContainer,
    Capabilities,
    ContainerSpec,
    ExecResult,
    ExitStatus,
    LogCallback,
    RunnableImage,
    SandboxUnavailable,
)
from ecslocal.runtime.backends.commands import DRAIN_SECONDS, exit_future, run_command
from ecslocal.runtime.backends.namespaces import (
    END,
    StartedInNamespace,
    children,
    exec_error,
    parent,
    probe,
    read_report,
)
from ecslocal.runtime.backends.sandbox import ProcessSandbox
from ecslocal.runtime.backends.spool import LineSplitter, Spool, SpoolFollower
from ecslocal.runtime.memory import (
    RSS_POLL_SECONDS,
    CgroupGroup,
    MemoryControl,
    cpu_seconds,
    descendants,
    is_container_cgroup,
    rss_bytes,
    session_members,
)
from ecslocal.runtime.reaper import (
    ReaperClient,
    boot_id,
    identity,
    kill_entry,
    pid_namespace,
    start_time,
)

log = logging.getLogger("ecslocal.backend")

#: Told (task id, container name, record) when a running container's recovery record gains
#: what it lacked when the engine first stored it: its namespace init's identity, learnt in
#: the background after start() returned.
RecordCallback = Callable[[str, str, dict[str, Any]], None]

#: After asking a namespace's init to end its container (END), a SIGKILL follows if it has not
#: ended within this (it drains its output pipes for at most nsinit.DRAIN_SECONDS, 2 s).
HARD_KILL_SECONDS = 5.0

_CANNOT_START = (
    "CannotStartContainerError: Error response from daemon: failed to create task for container:"
    " failed to create shim task: OCI runtime create failed: runc create failed: unable to start"
    " container process: {detail}: unknown"
)


def cannot_start_reason(exc: OSError, argv0: str, cwd: str | None) -> str:
    """ECS's container ``reason`` for a command runc could not start, in its words."""
    if cwd and exc.filename == cwd:
        detail = f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'
    elif exc.errno == errno.EACCES:
        detail = f'exec: "{argv0}": permission denied'
    elif "/" in argv0:
        detail = f'exec: "{argv0}": stat {argv0}: no such file or directory'
    else:
        detail = f'exec: "{argv0}": executable file not found in $PATH'
    return _CANNOT_START.format(detail=detail)


class _LineReader(asyncio.Protocol):
    """Splits a pipe into lines and hands each one, timestamped, to the log callback (the
    output path of a backend without a spool)."""

    def __init__(self, source: str, on_log: LogCallback, clock: Clock) -> None:
        self.source = source
        self.on_log = on_log
        self.clock = clock
        self.splitter = LineSplitter()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._emit(self.splitter.feed(data))

    def _emit(self, lines: list[tuple[str, int]]) -> None:
        for line, _ in lines:
            self.on_log(self.source, int(self.clock.time() * 1000), line)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._emit(self.splitter.rest())
        if not self.closed.done():
            self.closed.set_result(None)

    def finish(self) -> None:
        """The drain gave up: a pipe keeps delivering whatever still comes."""


_Reader = _LineReader | SpoolFollower


class _SpoolFailed(Exception):
    """The container's output files could not be created (the message is the reason)."""


def _docker_env(env: dict[str, str]) -> dict[str, str]:
    """The container's environment: the task's, plus what a container image always has."""
    out = dict(env)
    out.setdefault("PATH", os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
    out.setdefault("HOME", os.environ.get("HOME", "/root"))
    return out


class ProcessContainer:
    """A container: a local process tree, in PID + mount namespaces of its own where the
    machine allows it (then ``proc`` is the ``unshare`` process, ``init_pid`` the namespace's
    init and ``app_pid`` the container's command)."""

    def __init__(
        self,
        spec: ContainerSpec,
        proc: subprocess.Popen[bytes],
        group: CgroupGroup | None,
        readers: list[_Reader],
        reaper: ReaperClient | None,
        clock: Clock,
        rss_limit_mib: int | None,
        attached: asyncio.Future[None] | None = None,
        *,
        namespace: StartedInNamespace | None = None,
        on_record: RecordCallback | None = None,
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.group = group
        self.readers = readers
        self.reaper = reaper
        self.clock = clock
        self._pid = proc.pid
        self._ns = namespace
        self._namespaces = namespace.mode if namespace else None
        self._start = start_time(proc.pid)
        self._leader_pidns = pid_namespace(proc.pid)
        self._on_record = on_record
        self._env = _docker_env(dict(spec.env))  # reused by every exec (health checks)
        self._attached = attached
        self._oom_at_start = group.oom_kills() if group else 0
        self._rss_oom = False
        self._exit = namespace.exit_code if namespace else exit_future(proc, self._kill_group)
        self._watchdog: asyncio.Task[None] | None = None
        self._hard_kill_timer: asyncio.TimerHandle | None = None
        if rss_limit_mib:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._rss_watchdog(rss_limit_mib * 1024 * 1024)
            )
        self._result: asyncio.Task[ExitStatus] = asyncio.get_running_loop().create_task(
            self._finish()
        )
        if namespace is not None and namespace.ready is not None:
            # Once the init is known, the reaper and the store learn its identity too.
            namespace.ready.add_done_callback(lambda _: self._announce())

    @property
    def runtime_id(self) -> str:
        return self.spec.runtime_id

    @property
    def _init_pid(self) -> int | None:
        return self._ns.init_pid if self._ns else None

    @property
    def _init_pidfd(self) -> int:
        # A pidfd names the init for good: signals through it cannot reach a reused pid.
        return self._ns.init_pidfd if self._ns else -1

    def _announce(self) -> None:
        if self._exit.done() or self._init_pid is None:
            return
        record = self._record()
        if self.reaper is not None:
            self.reaper.watch(self.runtime_id, record)
        if self._on_record is not None:
            try:
                self._on_record(self.spec.task_id, self.spec.name, record)
            except Exception:  # the store's fault (logged there): the next save has it
                log.exception("cannot store the recovery record of %s", self.runtime_id)

    def _container_pids(self) -> list[int]:
        """The container's processes, as its cgroup would hold them. With a PID namespace:
        everything under its init (the init excepted: it is ecslocal's), so orphans of a
        double fork, re-parented to the init, count too. Without one: the session the
        command leads (start_new_session), which a double fork keeps unless it calls setsid
        (docs/runtime.md)."""
        init = self._init_pid
        if self._ns is not None and init is not None:
            return descendants(init)
        if self._ns is not None:  # the init not known yet: unshare's tree, the init in it
            return [self._pid, *descendants(self._pid)]
        return session_members(self._pid)

    async def _rss_watchdog(self, limit: int) -> None:
        if self._ns is not None and self._ns.ready is not None:
            await asyncio.shield(self._ns.ready)  # until then the tree is the init's
        while not self._exit.done():
            if rss_bytes(self._container_pids()) > limit:
                self._rss_oom = True
                self.kill()
                return
            await asyncio.sleep(RSS_POLL_SECONDS)

    async def _finish(self) -> ExitStatus:
        code = await self._exit
        if self._hard_kill_timer is not None:
            self._hard_kill_timer.cancel()
        if self._attached is not None:
            await self._attached
        if self._watchdog:
            self._watchdog.cancel()
        oom = self._rss_oom
        if self.group is not None:
            oom = oom or self.group.oom_kills() > self._oom_at_start
        # The main process is gone: like a container's PID 1, it takes everything with it.
        self.kill()
        if self._namespaces is not None:
            # unshare has exited, so its namespace's init has, and the kernel ends an init
            # only once every process of its namespace is gone: no writer is left, the spool
            # files are final. (A close of one descriptor says nothing: `echo x >/dev/stderr`
            # opens and closes a description of its own.)
            for r in self.readers:
                if isinstance(r, SpoolFollower):
                    r.finish()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(r.closed) for r in self.readers)),
                DRAIN_SECONDS,
            )
        except TimeoutError:
            # Something still holds the output open (a process that escaped the kill): take
            # what is there and stop following.
            for r in self.readers:
                r.finish()
        if self.group is not None:
            await asyncio.to_thread(self.group.remove)
        if self._ns is not None:
            if self._ns.ready is not None:
                await asyncio.shield(self._ns.ready)
            if self._ns.init_pidfd >= 0:
                os.close(self._ns.init_pidfd)
                self._ns.init_pidfd = -1
        if self.reaper is not None:
            self.reaper.forget(self.runtime_id)
        if oom:
            code = 137
        return ExitStatus(exit_code=code, oom_killed=oom)

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._result)

    def signal(self, sig: int) -> None:
        if self.proc.returncode is not None:
            return
        if self._ns is not None and self._ns.ready is not None and not self._ns.ready.done():
            self._ns.pending.append(sig)  # sent (to the init, which forwards it) once known
            return
        if self._init_pidfd >= 0:  # the init forwards it to the app
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init_pidfd, sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, sig)

    def _kill_group(self) -> None:
        """SIGKILL the process group while its leader is unreaped (so still ours)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signal.SIGKILL)

    def kill(self) -> None:
        if self._ns is not None and not self._exit.done() and self._end_namespace(self._ns):
            return
        self._hard_kill()

    def _end_namespace(self, ns: StartedInNamespace) -> bool:
        """Ask the namespace's init to end the container (END: it SIGKILLs the rest of the
        namespace, relays what the app's output pipes still hold, and exits with the app's
        137); a SIGKILL of everything follows if it has not ended within HARD_KILL_SECONDS.
        A SIGKILL of the init itself would lose what its pipes hold. False if there is no
        init to ask."""
        if ns.ready is not None and not ns.ready.done():
            ns.pending.append(END)  # sent once the init is known
        elif ns.init_pidfd >= 0:
            try:
                signal.pidfd_send_signal(ns.init_pidfd, END)
            except ProcessLookupError:
                return False
        else:
            return False
        if self._hard_kill_timer is None:
            loop = asyncio.get_running_loop()
            self._hard_kill_timer = loop.call_later(HARD_KILL_SECONDS, self._hard_kill)
        return True

    def _hard_kill(self) -> None:
        if self._init_pidfd >= 0:  # the namespace ends with its init
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init_pidfd, signal.SIGKILL)
        if self.proc.returncode is None:
            self._kill_group()
        if self.group is not None:
            self.group.kill_all()

    def stats(self) -> dict[str, Any]:
        # The processes the RSS watchdog sums (the cgroup's count when there is one).
        pids = self._container_pids()
        init = self._init_pid if self._ns is not None else None
        return {
            "memory_bytes": self.group.usage_bytes() if self.group else rss_bytes(pids),
            "cpu_seconds": cpu_seconds(pids, reaped_by=init),
            "pids": len(self.group.pids()) if self.group else len(pids),
        }

    async def exec(self, argv: Sequence[str], timeout: float) -> ExecResult:
        if self._ns is not None and self._ns.ready is not None:
            await asyncio.shield(self._ns.ready)
        if self._namespaces is None or self._init_pid is None:
            return await run_command(
                argv, env=self._env, cwd=self.spec.working_dir, timeout=timeout
            )
        # Run it where the container is (its PID and mount namespaces: its /proc, its view
        # of processes). Found on the container's PATH first, so a missing command fails as
        # it did before: not run at all.
        failure = (
            exec_error(argv[0], self._env.get("PATH"), self.spec.working_dir)
            if argv
            else FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "")
        )
        if failure is not None:  # relative names resolve against workingDirectory, as execvp
            return ExecResult(exit_code=None, output=f"exec failed: {failure}")
        cwd = self.spec.working_dir or os.getcwd()
        wrapped = self._namespaces.enter(self._init_pid, list(argv), cwd)
        return await run_command(wrapped, env=self._env, cwd=None, timeout=timeout)

    def recovery_record(self) -> dict[str, Any]:
        return self._record()

    def _record(self) -> dict[str, Any]:
        """The container's identity, for each process a kill would reach: the boot; the
        group leader's start time and PID-namespace inode; the namespace init's (once
        known); the cgroup. The reaper and recovery kill nothing that does not match (see
        :func:`ecslocal.runtime.reaper.kill_entries`)."""
        return leader_record(self._pid, self._start, self._leader_pidns, self.group) | {
            "init_pid": self._init_pid,
            "init_start": self._ns.init_identity.get("start") if self._ns else None,
            "pidns": self._ns.init_identity.get("pidns") if self._ns else None,
        }


def leader_record(
    pid: int, start: int | None, pidns: int | None, group: CgroupGroup | None
) -> dict[str, Any]:
    """A container's recovery record before its namespace init is known."""
    return {
        "boot": boot_id(),
        "pid": pid,
        "pgid": pid,
        "start": start,
        "leader_pidns": pidns,
        "cgroup": str(group.path) if group else None,
    }


class ProcessBackend:
    """Runs each container as a local process tree (the embedded default)."""

    name = "process"

    def __init__(
        self,
        memory: MemoryControl,
        clock: Clock,
        use_reaper: bool = True,
        spool: Spool | None = None,
    ) -> None:
        self.memory = memory
        self.clock = clock
        #: Where containers' stdout/stderr go (files the daemon follows); pipes without one.
        self.spool = spool
        self.reaper = ReaperClient() if use_reaper else None
        #: Where a container's completed recovery record goes (the daemon: the store).
        self.on_record: RecordCallback | None = None
        self.namespaces = probe()
        self.capabilities = Capabilities(
            memory_limits=memory.mode,
            pid_namespace=self.namespaces.enabled,
            mount_namespace=self.namespaces.enabled,
        )

    def describe(self) -> str:
        return f"process backend; memory limits: {self.memory.describe()}; {self.namespaces.reason}"

    def create_sandbox(self, task_id: str) -> ProcessSandbox:
        if self.reaper is not None and self.reaper.failure:
            raise SandboxUnavailable(self.reaper.failure)
        return ProcessSandbox(task_id, self.namespaces, self.memory)

    async def resolve_image(self, image: str) -> RunnableImage:
        # No image is unpacked: entryPoint + command run on the host ("host command").
        return RunnableImage(reference=image)

    async def start(self, spec: ContainerSpec) -> ProcessContainer:
        argv = list(spec.argv)
        if not argv:
            raise CannotStartContainer(
                "CannotStartContainerError: Error response from daemon: no command specified:"
                f" neither entryPoint nor command, so image '{spec.image}' must run its own;"
                " ecslocal's process backend runs host commands only, not image filesystems"
            )
        namespaces = self.namespaces if self.namespaces.enabled else None
        group = self.memory.create(spec.task_id, spec.name, spec.memory_mib, spec.task_memory_mib)
        report_r = report_w = -1
        command = argv
        if namespaces is not None:
            # The init execs the command; its errno would come back only after the init
            # started, so runc's reasons for the usual failures are found here first (as
            # execvp would meet them). A failure this misses (ENOEXEC, a race) is logged and
            # the container exits 127.
            path = _docker_env(dict(spec.env)).get("PATH")
            failure = exec_error(argv[0], path, spec.working_dir)
            if failure is not None:
                if group is not None:
                    group.remove()
                raise CannotStartContainer(cannot_start_reason(failure, argv[0], spec.working_dir))
            report_r, report_w = os.pipe2(os.O_CLOEXEC)
            command = namespaces.wrap(argv, report_w)
        outputs: list[int] = []
        spooled: list[SpoolFollower] = []
        try:
            if self.spool is not None:
                for source in ("stdout", "stderr"):
                    try:
                        fd, follower = self.spool.open(
                            spec.task_id, spec.runtime_id, spec.name, source, spec.on_log
                        )
                    except OSError as exc:
                        raise _SpoolFailed(
                            f"CannotStartContainerError: cannot create the container's {source}"
                            f" log file in {self.spool.directory}: {exc.strerror}"
                        ) from None
                    # With a namespace the container's end is known for certain (above, in
                    # _finish); without one a close of the last descriptor is the best sign.
                    follower.eof_on_close = namespaces is None
                    outputs.append(fd)
                    spooled.append(follower)
            proc = subprocess.Popen(
                command,
                env=_docker_env(dict(spec.env)),
                cwd=spec.working_dir,
                stdin=subprocess.DEVNULL,
                stdout=outputs[0] if outputs else subprocess.PIPE,
                stderr=outputs[1] if outputs else subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(report_w,) if report_w >= 0 else (),
            )
        except (OSError, ValueError, _SpoolFailed) as exc:
            _close(report_r, report_w)
            if group is not None:
                group.remove()
            for follower in spooled:
                follower.finish()
            if isinstance(exc, _SpoolFailed):
                reason = str(exc)
            elif isinstance(exc, ValueError):  # a NUL byte in argv or the environment
                reason = _CANNOT_START.format(detail=str(exc))
            else:
                reason = cannot_start_reason(exc, argv[0], spec.working_dir)
            raise CannotStartContainer(reason) from None
        finally:
            # The container holds its own copies: once they are all closed, inotify says
            # IN_CLOSE_WRITE, the spool's end-of-file.
            for fd in outputs:
                os.close(fd)
        _close(report_w)
        if self.reaper is not None:
            record = leader_record(proc.pid, start_time(proc.pid), pid_namespace(proc.pid), group)
            self.reaper.watch(spec.runtime_id, record)
        attached = None
        if group is not None:
            # Joining a cgroup costs a kernel RCU grace period (see docs/runtime.md), so it
            # runs in a worker thread while the namespace's init starts and the pipes are set
            # up; the sweep also moves anything forked meanwhile. start() returns (the container
            # is RUNNING) only once it is in, so nothing the container forks can escape its
            # memory limit. With a namespace the init (about 3 MB of anonymous memory) is in the
            # container's cgroup too: moving only the app after the init's report would add the
            # grace period to every start.
            attached = asyncio.get_running_loop().run_in_executor(None, group.attach_tree, proc.pid)
        started = None
        if namespaces is not None:
            started = self._namespace_started(spec, proc, report_r)
        loop = asyncio.get_running_loop()
        readers: list[_Reader] = list(spooled)
        for source, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if pipe is None:  # spooled
                continue
            _, reader = await loop.connect_read_pipe(
                lambda s=source: _LineReader(s, spec.on_log, self.clock), pipe
            )
            readers.append(reader)
        limit = spec.memory_mib or spec.task_memory_mib
        rss_limit = limit if (group is None and self.memory.mode == "rss") else None
        if attached is not None:
            await attached
        container = ProcessContainer(
            spec,
            proc,
            group,
            readers,
            self.reaper,
            self.clock,
            rss_limit,
            attached,
            namespace=started,
            on_record=self.on_record,
        )
        return container

    def _namespace_started(
        self, spec: ContainerSpec, proc: subprocess.Popen[bytes], report_r: int
    ) -> StartedInNamespace:
        """The container's namespace, filled in (in the background) once its init reports
        the app's exec: the init is ``unshare``'s child on the host, the app the init's. The
        container is RUNNING meanwhile, as it is right after a plain exec."""

        def kill_group() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        started = StartedInNamespace(self.namespaces, exit_future(proc, kill_group))

        async def learn() -> None:
            report = await read_report(report_r)
            if report != b"ok":
                err = int(report) if report.isdigit() else None
                log.warning(
                    "container %s of task %s: %s",
                    spec.name,
                    spec.task_id,
                    self._failed_reason(err, spec.argv[0], spec),
                )
                return
            for init in children(proc.pid):
                try:
                    pidfd = os.pidfd_open(init)
                except OSError:
                    continue  # exited meanwhile (the app did at once): nothing left to name
                if parent(init) != proc.pid:  # the pid was reused before the pidfd was taken
                    os.close(pidfd)
                    continue
                started.init_pid, started.init_pidfd = init, pidfd
                started.init_identity = identity(init)
                app = children(init)
                started.app_pid = app[0] if app else None
            for sig in started.pending:
                if started.init_pidfd >= 0:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(started.init_pidfd, sig)

        started.ready = asyncio.get_running_loop().create_task(learn())
        return started

    @staticmethod
    def _failed_reason(err: int | None, argv0: str, spec: ContainerSpec) -> str:
        if err is None:
            return _CANNOT_START.format(detail="namespace init (unshare) exited before the exec")
        exc = OSError(err, os.strerror(err), argv0)
        return cannot_start_reason(exc, argv0, spec.working_dir)

    def reap(self, record: dict[str, Any]) -> bool:
        """Kill what a recovery record names, once each identity is verified (see
        :func:`ecslocal.runtime.reaper.kill_entries`); a cgroup only if it is one of
        ecslocal's container cgroups."""
        cgroup = record.get("cgroup")
        found = kill_entry({**record, "cgroup": None})
        if isinstance(cgroup, str) and is_container_cgroup(cgroup):
            group = self.memory.group_at(cgroup)
            found = group.kill_all() or found
            group.remove()
        elif cgroup:
            log.warning("a recovery record names cgroup %r, not a container's: left alone", cgroup)
        return found

    async def close(self) -> None:
        if self.reaper is not None:
            self.reaper.stop_watching()  # on the loop's thread, then the blocking wait
            await asyncio.to_thread(self.reaper.close)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
