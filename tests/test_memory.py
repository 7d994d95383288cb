"""Memory limits: going over the hard limit kills the container with 137 and ECS's OOM reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, by_name, run_task, task_logs, taskdef, wait_stopped

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


# A child that double-forks leaves the command's tree: re-parented to the namespace's init
# (or, without a PID namespace, still in the command's session). A cgroup holds it all the
# same, so the RSS watchdog counts it too.
ORPHAN = (
    "(python3 -c 'a = bytearray(200 * 2**20); import time; time.sleep(30)' &);"
    " sleep 30; echo survived-orphan"
)


def test_an_orphaned_process_counts_toward_the_limit(mode_server: Server) -> None:
    ecs = mode_server.ecs()
    c = {"name": "orphan", "image": "sh", "command": ["sh", "-c", ORPHAN], "memory": 64}
    task = wait_stopped(ecs, run_task(ecs, taskdef("oom-orphan", c)), timeout=60)
    got = by_name(task)["orphan"]
    assert got["exitCode"] == 137
    assert got["reason"] == "OutOfMemoryError: Container killed due to memory usage"


@pytest.fixture
def rss_server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data", "--memory-enforcement", "rss").start()
    yield s
    s.stop()


def test_an_orphan_counts_without_a_pid_namespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without a namespace the command's session is the container (docs/runtime.md).
    monkeypatch.setenv("ECSLOCAL_PID_NAMESPACE", "off")
    s = Server(tmp_path / "data", "--memory-enforcement", "rss").start()
    try:
        assert "no PID namespace" in "".join(s.output)
        test_an_orphaned_process_counts_toward_the_limit(s)
    finally:
        s.stop()


# The container reads its own stats (task metadata v4) until they show the orphan's 100 MiB.
STATS_READER = """
import json, os, time, urllib.request
url = os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/stats"
for _ in range(60):
    stats = json.load(urllib.request.urlopen(url))
    if stats["memory_stats"]["usage"] > 100 * 2**20:
        break
    time.sleep(0.5)
print("usage", stats["memory_stats"]["usage"], "pids", stats["pids_stats"]["current"])
"""


def test_metadata_stats_count_the_orphan_too(rss_server: Server) -> None:
    script = (
        "(python3 -c 'a = bytearray(100 * 2**20); import time; time.sleep(60)' &);"
        f" python3 -c '{STATS_READER}'"
    )
    c = {"name": "stats", "image": "sh", "command": ["sh", "-c", script], "memory": 512}
    ecs = rss_server.ecs()
    arn = run_task(ecs, taskdef("orphan-stats", c))
    wait_stopped(ecs, arn, timeout=90)
    lines = [e["message"] for e in task_logs(rss_server, arn) if "usage" in e["message"]]
    assert lines, task_logs(rss_server, arn)
    words = lines[-1].split()
    assert int(words[1]) > 100 * 2**20
    assert int(words[3]) >= 2  # the orphan and the reader, at least
