"""Runtime backends: one narrow interface (:mod:`.base`), one module per way of running a
container. The process backend is the embedded default."""

from ecslocal.runtime.backends.base import (
    Backend,
    CannotStartContainer,
    Capabilities,
    ContainerHandle,
    ContainerSpec,
    ExecResult,
    ExitStatus,
    RunnableImage,
    SandboxUnavailable,
    TaskSandbox,
)

__all__ = [
    "Backend",
    "CannotStartContainer",
    "Capabilities",
    "ContainerHandle",
    "ContainerSpec",
    "ExecResult",
    "ExitStatus",
    "RunnableImage",
    "SandboxUnavailable",
    "TaskSandbox",
]
