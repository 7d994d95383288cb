"""Runtime backends: one narrow interface (:mod:`.base`), one module per way of running a
container. The process backend is the embedded default."""

from ecslocal.runtime.backends.base import (
    Backend,
    CannotStartContainer,
    ContainerHandle,
    ContainerSpec,
    ExecResult,
    ExitStatus,
)

__all__ = [
    "Backend",
    "CannotStartContainer",
    "ContainerHandle",
    "ContainerSpec",
    "ExecResult",
    "ExitStatus",
]
