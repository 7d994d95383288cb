"""The backend interface: capabilities, a per-task sandbox, the image step, then start,
signal, wait, stats, exec.

For each task the agent asks the backend for a :class:`TaskSandbox` before its first container
starts and closes it after the last one stopped (what is per task lives there: today the
process backend's namespace mode, next a network namespace and task volumes). Each container's
image goes through :meth:`Backend.resolve_image` (an image reference -> a
:class:`RunnableImage`), then :meth:`Backend.start` turns a :class:`ContainerSpec` into a running
container and hands back a :class:`ContainerHandle`. Everything ECS-specific (dependencies,
health, essential containers, stop order) lives in the agent; a backend knows only how to run
containers. The process backend implements it with local processes in PID + mount namespaces;
an OCI-runtime (runc) backend and a Docker engine backend implement the same protocols and
declare what they can do in :class:`Capabilities`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Called with (source, timestamp in ms, line) for each line the container writes;
#: source is "stdout" or "stderr".
LogCallback = Callable[[str, int, str], None]


class CannotStartContainer(Exception):
    """The container could not be started; the message is ECS's container ``reason``."""


class SandboxUnavailable(Exception):
    """The backend cannot run a new task now; the message is one line saying why."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared once (the engine and ``serve`` read it)."""

    #: How memory limits are enforced: "cgroup-v1", "cgroup-v2", "rss" or "off".
    memory_limits: str
    #: Each container's processes live in a PID namespace: nothing outlives its first process.
    pid_namespace: bool
    #: A mount namespace with a private /proc: a container sees only its own processes.
    mount_namespace: bool
    #: A network namespace per task (awsvpc). Not yet.
    network_namespace: bool = False
    #: Container images are pulled and run (not host commands). Not yet.
    images: bool = False


@dataclass(frozen=True)
class RunnableImage:
    """An image reference resolved into something the backend can run.

    ``host-command``: no image is unpacked; the container's entryPoint + command run on the
    host (the process backend). An image backend fills in the image config's defaults."""

    reference: str
    kind: str = "host-command"
    entry_point: Sequence[str] = ()
    command: Sequence[str] = ()
    #: True if bytes were fetched (the task's pullStartedAt/pullStoppedAt then differ).
    pulled: bool = False


class TaskSandbox(Protocol):
    """What one task's containers share, created before them and closed after them."""

    @property
    def task_id(self) -> str: ...

    def close(self) -> None:
        """Release the task's resources; called once its last container has stopped."""
        ...


@dataclass(frozen=True)
class ContainerSpec:
    task_id: str
    #: The container's id as DescribeTasks reports it (``runtimeId``), chosen by the agent.
    runtime_id: str
    name: str
    image: str
    argv: Sequence[str]
    env: Mapping[str, str]
    working_dir: str | None
    #: Hard limit in MiB (container ``memory``), None for none.
    memory_mib: int | None
    #: Limit in MiB shared by all containers of the task (task-level ``memory``), None for none.
    task_memory_mib: int | None
    on_log: LogCallback
    stop_signal: signal.Signals = signal.SIGTERM
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The task's sandbox (:meth:`Backend.create_sandbox`), None for a bare container.
    sandbox: TaskSandbox | None = None


@dataclass(frozen=True)
class ExitStatus:
    #: Exit code as Docker reports it: the process's code, or 128 + signal number.
    exit_code: int
    #: The kernel's OOM killer (or the RSS watchdog) killed a process of the container.
    oom_killed: bool = False


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    output: str
    timed_out: bool = False


class ContainerHandle(Protocol):
    """A running (or exited) container."""

    @property
    def runtime_id(self) -> str: ...

    async def wait(self) -> ExitStatus:
        """Wait until the container's main process has exited and its output is drained."""
        ...

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container's main process only."""
        ...

    def kill(self) -> None:
        """SIGKILL every process of the container."""
        ...

    def stats(self) -> dict[str, Any]:
        """Resource usage now: ``memory_bytes``, ``cpu_seconds``, ``pids``."""
        ...

    async def exec(self, argv: Sequence[str], timeout: float) -> ExecResult:
        """Run ``argv`` in the container's context (namespaces, environment, working
        directory)."""
        ...

    def recovery_record(self) -> dict[str, Any]:
        """What a restarted daemon needs to find and kill this container's processes."""
        ...


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def create_sandbox(self, task_id: str) -> TaskSandbox:
        """The task's sandbox; raise :class:`SandboxUnavailable` to refuse the task."""
        ...

    async def resolve_image(self, image: str) -> RunnableImage:
        """Resolve an image reference (pull it where the backend runs images)."""
        ...

    async def start(self, spec: ContainerSpec) -> ContainerHandle:
        """Start the container; raise :class:`CannotStartContainer` if it cannot run."""
        ...

    def describe(self) -> str:
        """One line on how this backend runs containers (shown by ``ecslocal serve``)."""
        ...

    def reap(self, record: dict[str, Any]) -> bool:
        """Kill whatever is left of a container a previous daemon started (from
        :meth:`ContainerHandle.recovery_record`); True if something was still running."""
        ...

    async def close(self) -> None:
        """Release what the backend holds (called when the daemon stops)."""
        ...
