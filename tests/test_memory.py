"""Memory limits: going over the hard limit kills the container with 137 and ECS's OOM reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, by_name, run_task, taskdef, wait_stopped

HOG = (
    "import time\n"
    "chunks = []\n"
    "while True:\n"
    "    chunks.append(bytearray(8 * 1024 * 1024))\n"
    "    time.sleep(0.01)\n"
)


def _hog(memory: int | None = 48) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "hog", "image": "python", "command": ["python3", "-c", HOG]}
    if memory is not None:
        c["memory"] = memory
    return c


def _cgroup_writable() -> bool:
    from ecslocal.runtime.memory import MemoryControl

    base = MemoryControl("auto", namespace="ecslocal-probe").base
    if base is None:
        return False
    base.rmdir()
    return True


@pytest.fixture(params=["cgroup", "rss"])
def mode_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "cgroup" and not _cgroup_writable():
        pytest.skip("no writable memory cgroup here (needs root and cgroup v1 or v2)")
    s = Server(tmp_path / "data", "--memory-enforcement", request.param).start()
    yield s
    s.stop()


def test_container_over_memory_limit_is_oom_killed(mode_server: Server) -> None:
    ecs = mode_server.ecs()
    arn = run_task(ecs, taskdef("oom", _hog(48)))
    task = wait_stopped(ecs, arn, timeout=60)
    c = by_name(task)["hog"]
    assert c["exitCode"] == 137
    assert c["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert task["stopCode"] == "EssentialContainerExited"


def test_task_level_memory_limit_applies(mode_server: Server) -> None:
    ecs = mode_server.ecs()
    td = taskdef("oom-task", _hog(None), memory="64")
    arn = run_task(ecs, td)
    c = by_name(wait_stopped(ecs, arn, timeout=60))["hog"]
    assert c["exitCode"] == 137
    assert c["reason"] == "OutOfMemoryError: Container killed due to memory usage"


def test_serve_says_which_enforcement_is_in_force(mode_server: Server) -> None:
    ready = "".join(mode_server.output)
    assert ("cgroup-v" in ready) if "cgroup" in mode_server.extra else ("rss watchdog" in ready)
