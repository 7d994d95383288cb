"""The engine's typed task model and the seams around it (issue 9, item 14).

* A task as an older daemon stored it (a STOPPED row of ``state.db`` written by commit
  a16078c, before the typed model) reads back as a :class:`TaskState` that stores the very
  same document, and renders as the DescribeTasks ``Task`` that daemon answered.
* What the container-facing endpoints get of the engine is frozen: they cannot write the
  engine's state, only ask (task protection).
* The runtime imports nothing from ``ecslocal.api`` or ``ecslocal.endpoints``.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from ecslocal.api.ecs_render import render_task
from ecslocal.config import Config
from ecslocal.daemon import ThreadedDaemon
from ecslocal.runtime.model import TaskState
from ecslocal.runtime.view import EngineView, TaskView
from tests.conftest import container, run_task, taskdef, wait_for

SRC = Path(__file__).resolve().parent.parent / "src" / "ecslocal"
LEGACY = Path(__file__).resolve().parent / "data" / "task_record_a16078c.json"


def test_a_record_of_an_older_daemon_reads_back_unchanged() -> None:
    record = json.loads(LEGACY.read_text())
    state = TaskState.from_record(record)
    assert state.stopped_by_container == "main" and state.containers[0].exit_code == 3
    assert state.to_record() == record
    # That daemon's DescribeTasks was the stored document without ecslocal's own "_" fields
    # (the output shape drops them) and, without include TAGS, without tags.
    described = {k: v for k, v in record.items() if not k.startswith("_") and k != "tags"}
    assert render_task(state, include_tags=False) == described
    assert render_task(state)["tags"] == [{"key": "k", "value": "v"}]


def test_a_state_cannot_be_changed_in_place() -> None:
    state = TaskState.from_record(json.loads(LEGACY.read_text()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.last_status = "RUNNING"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.containers[0].exit_code = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.overrides["taskRoleArn"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        state.tags[0]["value"] = "changed"  # type: ignore[index]
    with pytest.raises(AttributeError):
        state.containers.append(state.containers[0])  # type: ignore[attr-defined]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


# The runtime is the bottom layer: the HTTP API, the container-facing endpoints and the local
# ECR (its API and its registry) sit on top of it and are never imported by it.
_NOT_FROM_RUNTIME = ("ecslocal.api", "ecslocal.endpoints", "ecslocal.ecr", "ecslocal.registry")


def _absolute_imports(path: Path, where: Path | None = None) -> set[str]:
    """Imports of ``path`` (read as if it lived at ``where``), relative ones made absolute."""
    package = ["ecslocal", *(where or path).relative_to(SRC).parent.parts]
    names = _imports(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            module = ".".join([*package[: len(package) - node.level + 1], node.module or ""])
            names.add(module.rstrip("."))
            names.update(f"{module.rstrip('.')}.{a.name}" for a in node.names)
    return names


def _seam_breaks(path: Path, where: Path | None = None) -> list[str]:
    return sorted(n for n in _absolute_imports(path, where) if n.startswith(_NOT_FROM_RUNTIME))


def test_the_runtime_imports_nothing_from_the_api_the_endpoints_or_the_ecr() -> None:
    offending = {
        str(path.relative_to(SRC)): _seam_breaks(path) for path in (SRC / "runtime").rglob("*.py")
    }
    assert {k: v for k, v in offending.items() if v} == {}


@pytest.mark.parametrize(
    "source",
    [
        "from ecslocal.ecr import api",
        "import ecslocal.registry.store",
        "from ecslocal import registry",
        "from ...ecr import api",
        "from ...registry.blobs import Blob",
        "from ... import ecr",
        "from ecslocal.endpoints import metadata",
    ],
)
def test_the_seam_check_catches_each_kind_of_import(source: str, tmp_path: Path) -> None:
    # Proves the check above can fail: the text as if it were runtime/backends/_probe.py.
    fake = tmp_path / "_probe.py"
    fake.write_text(source + "\n")
    assert _seam_breaks(fake, SRC / "runtime" / "backends" / "_probe.py") != []


def test_the_seam_check_allows_the_runtime_own_imports(tmp_path: Path) -> None:
    fake = tmp_path / "_probe.py"
    fake.write_text(
        "from ecslocal import arns\nfrom .. import reasons\nfrom ...store import Store\n"
    )
    assert _seam_breaks(fake, SRC / "runtime" / "backends" / "_probe.py") == []


def test_the_endpoints_view_exposes_the_protocol_only() -> None:
    protocol = {n for n in vars(TaskView) if not n.startswith("_")}
    assert protocol == {
        "subscribe",
        "by_endpoint_id",
        "snapshot",
        "container_usage",
        "set_protection",
    }
    assert {n for n in dir(EngineView) if not n.startswith("_")} == protocol
    # The metadata endpoint module reaches the engine through the view alone.
    metadata = _imports(SRC / "endpoints" / "metadata.py")
    assert {n for n in metadata if n.startswith("ecslocal.runtime")} <= {
        "ecslocal.runtime.events",
        "ecslocal.runtime.events.Event",
        "ecslocal.runtime.events.TaskStateChanged",
        "ecslocal.runtime.health",
        "ecslocal.runtime.health.UNKNOWN",
        "ecslocal.runtime.health.HealthReport",
        "ecslocal.runtime.view",
        "ecslocal.runtime.view.ContainerSnapshot",
        "ecslocal.runtime.view.TaskSnapshot",
        "ecslocal.runtime.view.TaskView",
    }


@pytest.fixture
def threaded(tmp_path: Path) -> Any:
    (tmp_path / "data").mkdir(mode=0o700)
    daemon = ThreadedDaemon(Config(data_dir=tmp_path / "data", port=0))
    daemon.start()
    yield daemon
    daemon.stop()


def test_a_running_tasks_snapshot_is_read_only(threaded: ThreadedDaemon) -> None:
    agent = threaded.daemon.agent
    assert agent is not None
    ecs = boto3.client(
        "ecs",
        endpoint_url=threaded.daemon.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    ecs.create_cluster(clusterName="default")
    arn = run_task(ecs, taskdef("model-view", container("app", "sleep 60")))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    task_id = arn.rsplit("/", 1)[-1]
    view = agent.view()

    async def attempt() -> tuple[int, list[str]]:
        snapshot = view.snapshot(task_id)
        assert snapshot is not None
        refused = []
        for name, write in (
            ("state", lambda: setattr(snapshot, "state", None)),
            ("lastStatus", lambda: setattr(snapshot.state, "last_status", "STOPPED")),
            ("definition", lambda: snapshot.definition.__setitem__("family", "x")),
            (
                "container definition",
                lambda: snapshot.containers[0].definition.__setitem__("image", "x"),
            ),
            ("command", lambda: snapshot.definition["containerDefinitions"][0]["command"].pop()),
        ):
            try:
                write()
            except (AttributeError, TypeError, dataclasses.FrozenInstanceError):
                refused.append(name)
        return snapshot.state.version, refused

    version, refused = asyncio.run_coroutine_threadsafe(attempt(), threaded.loop).result(10)
    assert refused == ["state", "lastStatus", "definition", "container definition", "command"]
    described = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    assert described["lastStatus"] == "RUNNING" and described["version"] == version
    ecs.stop_task(task=arn)


def test_tags_of_a_running_task_survive_its_later_versions(threaded: ThreadedDaemon) -> None:
    """TagResource on a running task goes through the engine (one writer): the versions the
    task makes afterwards (STOPPING ... STOPPED) keep the tags."""
    ecs = boto3.client(
        "ecs",
        endpoint_url=threaded.daemon.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    ecs.create_cluster(clusterName="default")
    arn = run_task(ecs, taskdef("model-tags", container("app", "sleep 60")))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "a"}])
    version = ecs.describe_tasks(tasks=[arn])["tasks"][0]["version"]
    ecs.stop_task(task=arn)
    task = wait_for(ecs, arn, lambda t: t["lastStatus"] == "STOPPED")
    assert task["version"] > version
    described = ecs.describe_tasks(tasks=[arn], include=["TAGS"])["tasks"][0]
    assert described["tags"] == [{"key": "team", "value": "a"}]
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "a"}]
