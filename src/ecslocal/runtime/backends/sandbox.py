"""The process backend's per-task sandbox.

What is per task for the process backend today: the task's id (its cgroup directory is
``<base>/<task-id>``) and the namespace mode its containers run in. Closing it, after the
task's last container stopped, removes the task's cgroup directory if a container left it
behind. This is where a task's network namespace and its volumes go next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecslocal.runtime.backends.namespaces import NamespaceMode
from ecslocal.runtime.memory import MemoryControl


@dataclass
class ProcessSandbox:
    task_id: str
    namespaces: NamespaceMode
    memory: MemoryControl
    closed: bool = field(default=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.memory.remove_task(self.task_id)
