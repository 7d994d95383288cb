"""The engine's events (runtime/events.py): what a task's life looks like from the event stream
``GET /_ecslocal/v1/events`` (api/local_events.py), that persistence is the bus's first
subscriber, and that a failing subscriber never stops the engine.

Event names follow ECS's "ECS Task State Change" event detail (lastStatus, desiredStatus,
stopCode, stoppedReason, version; containers' name, runtimeId, lastStatus, exitCode, reason):
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import boto3
import pytest

from ecslocal.config import Config
from ecslocal.daemon import ThreadedDaemon
from ecslocal.runtime.events import (
    ContainerStateChanged,
    Event,
    EventBus,
    TaskStateChanged,
)
from tests.conftest import Server, container, run_task, signed, taskdef, wait_stopped

#: Exits with ``code`` on the stop signal: the exit code the STOPPED event must carry.
TRAP = "trap 'exit {code}' TERM; sleep 120 & wait"
REASON = "stopped by test_events"


def _stream(url: str, query: str) -> Iterator[dict[str, Any]]:
    request = signed(f"{url}/_ecslocal/v1/events?{query}")
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        for line in response:
            if line.strip():
                yield json.loads(line)


def _two_containers(family: str) -> dict[str, Any]:
    """``app`` starts once ``db`` is HEALTHY; both exit with their own code when stopped."""
    db = container(
        "db",
        TRAP.format(code=0),
        essential=False,
        stopTimeout=20,
        healthCheck={"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 1},
    )
    app = container(
        "app",
        TRAP.format(code=3),
        stopTimeout=20,
        dependsOn=[{"containerName": "db", "condition": "HEALTHY"}],
    )
    return taskdef(family, db, app)


def test_a_task_life_as_events_in_order(server: Server) -> None:
    ecs = server.ecs()
    arn = run_task(ecs, _two_containers("events-life"))
    task_id = arn.rsplit("/", 1)[-1]
    events: list[dict[str, Any]] = []
    for event in _stream(server.url, f"task={task_id}&until=STOPPED"):
        events.append(event)
        app = event["type"] == "ContainerStateChanged" and event["name"] == "app"
        if app and event["lastStatus"] == "RUNNING":
            ecs.stop_task(task=arn, reason=REASON)
    assert {e["taskArn"] for e in events} == {arn}

    task_events = [e for e in events if e["type"] == "TaskStateChanged"]
    statuses = [status for status, _ in groupby(e["lastStatus"] for e in task_events)]
    assert statuses == [
        "PROVISIONING",
        "PENDING",
        "RUNNING",
        "STOPPING",
        "DEPROVISIONING",
        "STOPPED",
    ]
    assert task_events[-1] == events[-1]  # the stream ends with the STOPPED event
    created, pulled = task_events[0], task_events[1]
    assert "createdAt" in created and "pullStoppedAt" not in created
    assert pulled["lastStatus"] == "PENDING" and pulled["pullStartedAt"] <= pulled["pullStoppedAt"]

    # One TaskStateChanged per version, versions strictly increasing; the container and
    # health events that follow one carry its version.
    versions = [e["version"] for e in task_events]
    assert versions == sorted(set(versions)) and versions[0] == 1
    current = 0
    for e in events:
        if e["type"] == "TaskStateChanged":
            current = e["version"]
        else:
            assert e["version"] == current, e

    def where(kind: str, **fields: Any) -> int:
        found = [
            i
            for i, e in enumerate(events)
            if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]
        assert len(found) == 1, (kind, fields, events)
        return found[0]

    db_running = where("ContainerStateChanged", name="db", lastStatus="RUNNING")
    db_healthy = where("ContainerHealthChanged", name="db", healthStatus="HEALTHY")
    app_running = where("ContainerStateChanged", name="app", lastStatus="RUNNING")
    task_running = next(
        i
        for i, e in enumerate(events)
        if e.get("lastStatus") == "RUNNING" and e["type"] == "TaskStateChanged"
    )
    # created first (PENDING), then started; app only once db is healthy (dependsOn HEALTHY)
    assert where("ContainerStateChanged", name="db", lastStatus="PENDING") < db_running
    assert where("ContainerStateChanged", name="app", lastStatus="PENDING") < db_running
    assert db_running < db_healthy < app_running < task_running
    assert events[db_running]["runtimeId"] and events[app_running]["runtimeId"]

    # StopTask's reason is in the stop request's event and in STOPPING's
    stop_requested = next(e for e in task_events if e["desiredStatus"] == "STOPPED")
    stopping = next(e for e in task_events if e["lastStatus"] == "STOPPING")
    for e in (stop_requested, stopping, task_events[-1]):
        assert e["stoppedReason"] == REASON and e["stopCode"] == "UserInitiated", e
    assert "stopCode" not in task_events[0] and "stoppedReason" not in task_events[0]

    # reverse dependency order, each with the exit code it chose
    app_stopped = where("ContainerStateChanged", name="app", lastStatus="STOPPED")
    db_stopped = where("ContainerStateChanged", name="db", lastStatus="STOPPED")
    stopping_at = events.index(stopping)
    assert stopping_at < app_stopped < db_stopped
    assert events[app_stopped]["exitCode"] == 3 and events[db_stopped]["exitCode"] == 0

    # what the events said is what was stored
    described = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    assert described["version"] == task_events[-1]["version"]
    assert described["stoppedReason"] == REASON
    assert {c["name"]: c["exitCode"] for c in described["containers"]} == {"app": 3, "db": 0}


def test_the_stream_of_a_stopped_task_replays_and_ends(server: Server) -> None:
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("events-done", container("app", "exit 7")))
    wait_stopped(ecs, arn)
    events = list(_stream(server.url, f"task={arn.rsplit('/', 1)[-1]}"))
    exited = [e for e in events if e["type"] == "ContainerStateChanged" and "exitCode" in e]
    assert [e["exitCode"] for e in exited] == [7]
    assert events[-1]["type"] == "TaskStateChanged" and events[-1]["lastStatus"] == "STOPPED"
    assert events[-1]["stopCode"] == "EssentialContainerExited"


def test_until_running_ends_at_running(server: Server) -> None:
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("events-until", container("app", TRAP.format(code=0))))
    events = list(_stream(server.url, f"task={arn.rsplit('/', 1)[-1]}&until=RUNNING"))
    ecs.stop_task(task=arn)
    assert events[-1]["type"] == "TaskStateChanged" and events[-1]["lastStatus"] == "RUNNING"
    assert all(e.get("lastStatus") != "STOPPED" for e in events)
    wait_stopped(ecs, arn)


def test_the_unfiltered_stream_follows_new_tasks(server: Server) -> None:
    ecs = server.ecs()
    definition = taskdef("events-all", container("app", "exit 0"))
    arn_box: list[str] = []

    def start_once_subscribed() -> None:
        arn_box.append(run_task(ecs, definition))

    seen: list[dict[str, Any]] = []
    starter: threading.Thread | None = None
    request = signed(f"{server.url}/_ecslocal/v1/events")
    with urllib.request.urlopen(request, timeout=120) as response:
        # The response headers are in: the subscription exists, so the task's events come.
        starter = threading.Thread(target=start_once_subscribed)
        starter.start()
        for line in response:
            if not line.strip():
                continue
            event = json.loads(line)
            starter.join()
            if event["taskArn"] == arn_box[0]:
                seen.append(event)
                if event.get("lastStatus") == "STOPPED" and event["type"] == "TaskStateChanged":
                    break
    assert seen[0]["type"] == "TaskStateChanged" and seen[0]["lastStatus"] == "PROVISIONING"
    assert seen[0]["version"] == 1


def _error(url: str, sign: bool = True) -> tuple[int, dict[str, Any]]:
    request = signed(url) if sign else urllib.request.Request(url)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    return info.value.code, json.loads(info.value.read())


def test_bad_requests_get_the_local_api_errors(server: Server) -> None:
    base = f"{server.url}/_ecslocal/v1/events"
    status, body = _error(f"{base}?task=nope")
    assert (status, body["message"]) == (404, "Task nope was not found.")
    status, body = _error(f"{base}?until=DONE")
    assert status == 400 and "until must be a task status" in body["message"]
    status, _ = _error(base, sign=False)
    assert status == 401


def test_cli_events(server: Server) -> None:
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("events-cli", container("app", "exit 5")))
    task_id = arn.rsplit("/", 1)[-1]
    out = server.cli("events", task_id, "--until", "STOPPED")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"{task_id[:12]} v1 task PROVISIONING (desired RUNNING)" in lines[0]
    assert any("container app STOPPED exitCode=5" in line for line in lines), lines
    assert "task STOPPED (desired STOPPED) stopCode='EssentialContainerExited'" in lines[-1]
    as_json = server.cli("events", task_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [json.loads(line)["type"] for line in as_json.stdout.splitlines()][0] == (
        "TaskStateChanged"
    )


# -- in process: the bus itself, on a daemon started in this process ------------------------


def test_a_queue_that_overflows_ends_instead_of_skipping() -> None:
    async def main() -> tuple[list[Event | None], bool]:
        bus = EventBus()
        queue = bus.queue(maxsize=2)
        for version in (1, 2, 3, 4):
            bus.publish(
                TaskStateChanged(
                    task_id="t",
                    task_arn="arn:aws:ecs:us-east-1:000000000000:task/default/t",
                    cluster_arn="arn:aws:ecs:us-east-1:000000000000:cluster/default",
                    version=version,
                    updated_at=0.0,
                    last_status="PENDING",
                    desired_status="RUNNING",
                    task_definition_arn="arn:aws:ecs:us-east-1:000000000000:task-definition/f:1",
                )
            )
        got = [await queue.get(1), await queue.get(1), await queue.get(1)]
        return got, queue.overflowed

    got, overflowed = asyncio.run(main())
    assert [e.version if e else None for e in got] == [1, 2, None]
    assert overflowed


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[ThreadedDaemon]:
    (tmp_path / "data").mkdir(mode=0o700)
    daemon = ThreadedDaemon(Config(data_dir=tmp_path / "data", port=0))
    daemon.start()
    yield daemon
    daemon.stop()


def _ecs(url: str) -> Any:
    return boto3.client(
        "ecs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_a_failing_subscriber_does_not_stop_the_engine(threaded: ThreadedDaemon) -> None:
    daemon = threaded.daemon
    assert daemon.agent is not None and daemon.store is not None
    store = daemon.store
    calls: list[str] = []
    stored_first: list[tuple[int, int]] = []

    def broken(event: Event) -> None:
        calls.append(event.TYPE)
        raise RuntimeError("a subscriber's bug")

    def check_stored(event: Event) -> None:
        # Persistence subscribed first: the version an event announces is already stored.
        found = store.get_task(event.task_id)
        stored_first.append((event.version, found[0]["version"] if found else -1))

    daemon.agent.events.subscribe(broken)
    daemon.agent.events.subscribe(check_stored, [TaskStateChanged, ContainerStateChanged])
    ecs = _ecs(daemon.url)
    ecs.create_cluster(clusterName="default")  # a fresh account has none (as in AWS)
    arn = run_task(ecs, taskdef("events-broken", container("app", TRAP.format(code=0))))
    ecs.get_waiter("tasks_running").wait(tasks=[arn], WaiterConfig={"Delay": 1})
    ecs.stop_task(task=arn, reason=REASON)
    task = wait_stopped(ecs, arn)
    assert task["stoppedReason"] == REASON and task["containers"][0]["exitCode"] == 0
    assert calls.count("TaskStateChanged") == task["version"]
    assert "ContainerStateChanged" in calls
    assert stored_first and all(event == stored for event, stored in stored_first), stored_first


def test_an_open_stream_ends_when_the_daemon_stops(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o700)
    threaded = ThreadedDaemon(Config(data_dir=tmp_path / "data", port=0))
    url = threaded.start()
    lines: list[bytes] = []
    try:
        response = urllib.request.urlopen(signed(f"{url}/_ecslocal/v1/events"), timeout=120)
    except BaseException:
        threaded.stop()
        raise
    with response:
        reader = threading.Thread(target=lambda: lines.extend(response))
        reader.start()
        # Agent.shutdown closes the bus: the stream ends (end of chunked body), so the HTTP
        # server's cleanup is not held up by a reader that would follow forever.
        threaded.stop()
        reader.join(timeout=60)
        assert not reader.is_alive()
    assert all(not line.strip() for line in lines)
