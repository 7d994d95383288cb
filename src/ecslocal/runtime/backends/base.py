"""The backend interface: start, signal, wait, stats, exec.

A backend turns a :class:`ContainerSpec` into a running container and hands back a
:class:`ContainerHandle`. Everything ECS-specific (dependencies, health, essential containers,
stop order) lives in the agent; a backend knows only how to run one container. The process
backend implements it with local process groups; an OCI-runtime (runc) backend and a Docker
engine backend implement the same two protocols.
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

    @property
    def pid(self) -> int: ...

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
        """Run ``argv`` in the container's context (environment, working directory)."""
        ...

    def recovery_record(self) -> dict[str, Any]:
        """What a restarted daemon needs to find and kill this container's processes."""
        ...


class Backend(Protocol):
    name: str

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
