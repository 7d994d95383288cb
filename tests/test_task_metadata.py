"""Task metadata v4/v3 as a container reads it from $ECS_CONTAINER_METADATA_URI_V4."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from tests.conftest import Server, run_task, task_logs, taskdef, wait_stopped

READER = """
import json, os, time, urllib.request
base = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
v3 = os.environ["ECS_CONTAINER_METADATA_URI"]
assert v3.replace("/v3/", "/v4/") == base
def get(path, root=base):
    with urllib.request.urlopen(root + path) as r:
        return json.loads(r.read())
big = bytearray(20 * 1024 * 1024)  # some memory the stats should see
time.sleep(0.3)
def quick_stopped():
    return any(c["Name"] == "quick_1" and c["KnownStatus"] == "STOPPED"
               for c in get("/task")["Containers"])
deadline = time.time() + 10  # until the sibling "quick_1" has exited
while time.time() < deadline and not quick_stopped():
    time.sleep(0.1)
out = {"container": get(""), "task": get("/task"), "tags": get("/taskWithTags"),
       "stats": get("/stats"), "task_stats": get("/task/stats"),
       "v3": get("", v3), "v3_task": get("/task", v3)}
print("META " + json.dumps(out), flush=True)
"""

AGENT_TASK_STATUSES = {"NONE", "MANIFEST_PULLED", "CREATED", "RUNNING", "STOPPED"}
AGENT_CONTAINER_STATUSES = {
    "NONE",
    "MANIFEST_PULLED",
    "PULLED",
    "CREATED",
    "RUNNING",
    "RESOURCES_PROVISIONED",
    "STOPPED",
}
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _ts(value: str) -> float:
    assert RFC3339_NANO.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _metadata(server: Server, **fields: Any) -> tuple[str, dict[str, Any]]:
    ecs = server.ecs()
    definition = taskdef(
        "meta",
        {
            "name": "reader",
            "image": "python:3.11",
            "memory": 256,
            "command": [sys.executable, "-c", READER],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/ecs/meta",
                    "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "m",
                },
            },
        },
        {
            "name": "side",
            "image": "busybox",
            "memory": 64,
            "essential": False,
            "cpu": 1,
            "command": ["sleep", "30"],
        },
        # A sibling that exits on its own while the reader still runs; cpu 10 is kept as is.
        {
            "name": "quick_1",
            "image": "busybox",
            "memory": 64,
            "essential": False,
            "cpu": 10,
            "command": ["sh", "-c", "exit 3"],
        },
        **fields,
    )
    arn = run_task(ecs, definition, tags=[{"key": "team", "value": "core"}])
    wait_stopped(ecs, arn, timeout=60)
    lines = [e["message"] for e in task_logs(server, arn) if e["message"].startswith("META ")]
    assert lines, [e["message"] for e in task_logs(server, arn)]
    return arn, json.loads(lines[0][5:])


def test_container_and_task_metadata_v4(server: Server) -> None:
    arn, meta = _metadata(server, cpu="512", memory="1024")
    c = meta["container"]
    task_id = arn.rsplit("/", 1)[-1]
    assert c["Name"] == "reader" and c["Image"] == "python:3.11"
    assert c["DockerId"].startswith(task_id)
    assert c["ImageID"].startswith("sha256:")
    assert c["Labels"]["com.amazonaws.ecs.task-arn"] == arn
    assert c["Labels"]["com.amazonaws.ecs.container-name"] == "reader"
    assert c["Labels"]["com.amazonaws.ecs.task-definition-family"] == "meta"
    assert c["KnownStatus"] == "RUNNING" and c["DesiredStatus"] == "RUNNING"
    assert c["Limits"]["Memory"] == 256
    assert c["Type"] == "NORMAL"
    assert c["LogDriver"] == "awslogs" and c["LogOptions"]["awslogs-group"] == "/ecs/meta"
    assert c["ContainerARN"].startswith("arn:aws:ecs:us-east-1:000000000000:container/")
    assert c["Networks"] == [{"NetworkMode": "bridge", "IPv4Addresses": ["127.0.0.1"]}]
    assert "ExitCode" not in c and "FinishedAt" not in c and "Health" not in c

    t = meta["task"]
    assert t["TaskARN"] == arn and t["Family"] == "meta" and isinstance(t["Revision"], str)
    assert t["Cluster"] == "arn:aws:ecs:us-east-1:000000000000:cluster/default"
    assert t["KnownStatus"] == "RUNNING" and t["LaunchType"] == "EC2"
    assert t["Limits"] == {"CPU": 0.5, "Memory": 1024}
    assert sorted(x["Name"] for x in t["Containers"]) == ["quick_1", "reader", "side"]
    assert t["AvailabilityZone"] == "us-east-1a"
    assert "TaskTags" not in t
    assert meta["tags"]["TaskTags"] == {"team": "core"}
    # The revision, as ECS numbers it, in Revision and the task-definition-version label.
    described = server.ecs().describe_tasks(tasks=[arn])["tasks"][0]
    revision = described["taskDefinitionArn"].rsplit(":", 1)[-1]
    assert t["Revision"] == revision
    assert c["Labels"]["com.amazonaws.ecs.task-definition-version"] == revision

    # Pulling ends before any container is created; each container's CreatedAt is its own.
    pull_started, pull_stopped = _ts(t["PullStartedAt"]), _ts(t["PullStoppedAt"])
    assert pull_started <= pull_stopped <= _ts(c["CreatedAt"]) <= _ts(c["StartedAt"])
    assert described["createdAt"].timestamp() <= pull_started
    containers = {x["Name"]: x for x in t["Containers"]}
    for name, x in containers.items():
        assert pull_stopped <= _ts(x["CreatedAt"]) == _ts(x["StartedAt"]), name

    # EC2 DockerName: ecs-<family>-<revision>-<name>-<hex>, the same in every answer.
    assert re.fullmatch(rf"ecs-meta-{revision}-reader-[0-9a-f]{{20}}", c["DockerName"])
    assert containers["reader"]["DockerName"] == c["DockerName"]
    names = {x["Name"]: x["DockerName"] for x in meta["tags"]["Containers"]}
    assert names == {name: x["DockerName"] for name, x in containers.items()}
    # Characters outside [A-Za-z0-9-] are dropped from the container name.
    assert re.fullmatch(rf"ecs-meta-{revision}-quick1-[0-9a-f]{{20}}", names["quick_1"])

    # The EC2 agent reports a container cpu under 2 units (or none) as 2.
    assert c["Limits"]["CPU"] == 2 and containers["side"]["Limits"]["CPU"] == 2
    assert containers["quick_1"]["Limits"]["CPU"] == 10

    # A sibling that has exited: its exit code, as the task document shows it.
    quick = containers["quick_1"]
    assert quick["KnownStatus"] == "STOPPED" and quick["DesiredStatus"] == "STOPPED"
    assert quick["ExitCode"] == 3
    assert _ts(quick["StartedAt"]) <= _ts(quick["FinishedAt"])

    # The agent's own statuses, never the ECS API's.
    assert {x["KnownStatus"] for x in t["Containers"]} <= AGENT_CONTAINER_STATUSES

    # v3 ($ECS_CONTAINER_METADATA_URI): the same container, without the v4-only fields.
    v3 = meta["v3"]
    for key in (
        "DockerId",
        "Name",
        "DockerName",
        "Image",
        "ImageID",
        "Labels",
        "KnownStatus",
        "DesiredStatus",
        "Limits",
        "CreatedAt",
        "StartedAt",
        "Networks",
        "Type",
    ):
        assert v3[key] == c[key], key
    assert not {"ContainerARN", "LogDriver", "LogOptions"} & set(v3)
    v3_task = meta["v3_task"]
    assert v3_task["TaskARN"] == arn and v3_task["KnownStatus"] == "RUNNING"
    assert "LaunchType" not in v3_task
    assert {x["DockerId"] for x in v3_task["Containers"]} == set(meta["task_stats"])


def test_stats_come_from_the_real_process(server: Server) -> None:
    _, meta = _metadata(server)
    stats = meta["stats"]
    assert stats["memory_stats"]["usage"] > 20 * 1024 * 1024
    assert stats["memory_stats"]["limit"] == 256 * 1024 * 1024
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["pids_stats"]["current"] >= 1
    assert set(meta["task_stats"]) == {x["DockerId"] for x in meta["task"]["Containers"]}


def _error(url: str) -> tuple[int, Any]:
    try:
        urllib.request.urlopen(url)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    raise AssertionError(f"expected an error from {url}")


def test_unknown_endpoint_id_is_404_like_the_agent(server: Server) -> None:
    no_container = "unable to get container ID from request: unable to get docker ID from v3"
    no_task = "unable to get task arn from request: unable to get task Arn from v3"
    for version in ("v4", "v3"):
        base, prefix = f"{server.url}/{version}/nope", version.upper()
        assert _error(base) == (
            404,
            f"{prefix} container metadata handler: {no_container} endpoint ID: nope",
        )
        for path in ("/task", "/taskWithTags"):
            assert _error(base + path) == (
                404,
                f"{prefix} task metadata handler: {no_task} endpoint ID: nope",
            )
        # The stats handlers look the task up first (agent/handlers/v4/tmdsstate.go).
        assert _error(base + "/stats") == (
            404,
            f"{prefix} container stats handler: {no_task} endpoint ID: nope",
        )
        assert _error(base + "/task/stats") == (
            404,
            f"{prefix} task stats handler: {no_task} endpoint ID: nope",
        )


STATUS_EARLY = """
import json, os, urllib.request
with urllib.request.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/task") as r:
    print("EARLY " + r.read().decode(), flush=True)
"""

STATUS_APP = """
import json, os, signal, sys, time, urllib.request
def on_term(*_):
    with urllib.request.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/task") as r:
        print("TERM " + r.read().decode(), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("READY", flush=True)
time.sleep(30)
"""


def _log_line(server: Server, arn: str, prefix: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        lines = [e["message"] for e in task_logs(server, arn)]
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[0][len(prefix) :]
        assert time.monotonic() < deadline, lines
        time.sleep(0.1)


def test_known_status_is_the_agents_status(server: Server) -> None:
    ecs = server.ecs()
    definition = taskdef(
        "meta-status",
        # "app" waits for "early" to complete: while "early" runs, the task is PENDING.
        {
            "name": "early",
            "image": "python",
            "memory": 64,
            "essential": False,
            "command": [sys.executable, "-c", STATUS_EARLY],
        },
        {
            "name": "app",
            "image": "python",
            "memory": 64,
            "stopTimeout": 5,
            "command": [sys.executable, "-c", STATUS_APP],
            "dependsOn": [{"containerName": "early", "condition": "COMPLETE"}],
        },
    )
    arn = run_task(ecs, definition)
    early = json.loads(_log_line(server, arn, "EARLY "))
    assert early["KnownStatus"] == "CREATED" and early["DesiredStatus"] == "RUNNING"
    statuses = {x["Name"]: x["KnownStatus"] for x in early["Containers"]}
    assert statuses == {"early": "RUNNING", "app": "PULLED"}
    assert "CreatedAt" not in by_name_doc(early)["app"]  # not created yet

    _log_line(server, arn, "READY")
    ecs.stop_task(task=arn, reason="done")
    wait_stopped(ecs, arn)
    stopping = json.loads(_log_line(server, arn, "TERM "))
    # ECS says STOPPING; the agent's task is still RUNNING, with STOPPED desired.
    assert stopping["KnownStatus"] == "RUNNING" and stopping["DesiredStatus"] == "STOPPED"
    containers = by_name_doc(stopping)
    assert containers["early"]["KnownStatus"] == "STOPPED"
    assert containers["early"]["ExitCode"] == 0
    assert containers["app"]["KnownStatus"] == "RUNNING"
    for doc in (early, stopping):
        assert doc["KnownStatus"] in AGENT_TASK_STATUSES
        assert {x["KnownStatus"] for x in doc["Containers"]} <= AGENT_CONTAINER_STATUSES


def by_name_doc(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["Name"]: c for c in task["Containers"]}


HEALTH_PROBE = """
import json, os, time, urllib.request
base = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return json.loads(r.read())
first = get("")["Health"]
deadline = time.time() + 20
while time.time() < deadline:
    task = get("/task")
    if all(c.get("Health", {}).get("status") for c in task["Containers"]):
        break
    time.sleep(0.2)
print("HEALTH " + json.dumps({"first": first, "task": task}), flush=True)
"""


def test_health_in_metadata(server: Server) -> None:
    ecs = server.ecs()
    definition = taskdef(
        "meta-health",
        {
            "name": "probe",
            "image": "python",
            "memory": 64,
            "command": [sys.executable, "-c", HEALTH_PROBE],
            # Fails with exit code 3 and 2000+ bytes of output, so UNHEALTHY after one check.
            "healthCheck": {
                "command": ["CMD-SHELL", "echo broken; yes x | head -c 2000; exit 3"],
                "interval": 5,
                "timeout": 2,
                "retries": 1,
            },
        },
        {
            "name": "good",
            "image": "busybox",
            "memory": 64,
            "essential": False,
            "command": ["sleep", "30"],
            "stopTimeout": 2,
            "healthCheck": {"command": ["CMD-SHELL", "echo fine"], "interval": 5, "retries": 1},
        },
    )
    arn = run_task(ecs, definition)
    wait_stopped(ecs, arn, timeout=40)
    out = json.loads(_log_line(server, arn, "HEALTH "))
    assert out["first"] == {}  # the status is left out while unknown
    containers = by_name_doc(out["task"])
    bad, good = containers["probe"]["Health"], containers["good"]["Health"]
    assert bad["status"] == "UNHEALTHY" and bad["exitCode"] == 3
    assert bad["output"].startswith("broken\nx\n") and len(bad["output"]) == 1024
    assert _ts(bad["statusSince"]) >= _ts(containers["probe"]["StartedAt"])
    assert good["status"] == "HEALTHY" and good["output"] == "fine\n"
    assert "exitCode" not in good  # 0 is left out, as the agent's omitempty does
    assert _ts(good["statusSince"]) >= _ts(containers["good"]["StartedAt"])


PROTECT = """
import json, os, urllib.request
base = os.environ["ECS_AGENT_URI"] + "/task-protection/v1/state"
def call(method, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base, data=data, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
out = [call("GET"), call("PUT", {"ProtectionEnabled": True, "ExpiresInMinutes": 5}),
       call("GET"), call("PUT", {"ExpiresInMinutes": 5}),
       call("PUT", {"ProtectionEnabled": False})]
print("PROT " + json.dumps(out), flush=True)
"""


def test_task_protection_through_ecs_agent_uri(server: Server) -> None:
    from tests.conftest import ecs_task_role

    ecs = server.ecs()
    role = ecs_task_role(server, "meta-protect")
    definition = taskdef(
        "meta-protect",
        {
            "name": "app",
            "image": "python",
            "memory": 128,
            "command": [sys.executable, "-c", PROTECT],
        },
        taskRoleArn=role,
    )
    arn = run_task(ecs, definition)
    wait_stopped(ecs, arn)
    line = next(e["message"] for e in task_logs(server, arn) if e["message"].startswith("PROT "))
    first, put, got, bad, off = json.loads(line[5:])
    assert first == [
        200,
        {"protection": {"ExpirationDate": None, "ProtectionEnabled": False, "TaskArn": arn}},
    ]
    assert put[0] == 200 and put[1]["protection"]["ProtectionEnabled"] is True
    assert put[1]["protection"]["ExpirationDate"].endswith("Z")
    assert got[1] == put[1]
    assert bad[0] == 400 and bad[1]["error"]["Message"] == (
        "Invalid request: does not contain 'ProtectionEnabled' field"
    )
    assert off[1]["protection"]["ProtectionEnabled"] is False


TAGS_READER = """
import os, urllib.request
with urllib.request.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/taskWithTags") as r:
    print("TAGS " + r.read().decode(), flush=True)
"""


def test_task_tag_without_a_value_is_an_empty_string_in_task_with_tags(server: Server) -> None:
    # ECS's Tag.value is optional ("The optional part of a key-value pair that make up a tag",
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Tag.html); the agent's
    # TaskTags is a map[string]string (agent/handlers/v4 task response), so the tag is "".
    ecs = server.ecs()
    definition = taskdef(
        "meta-novalue",
        {
            "name": "app",
            "image": "python",
            "memory": 128,
            "command": [sys.executable, "-c", TAGS_READER],
        },
    )
    arn = run_task(ecs, definition, tags=[{"key": "novalue"}, {"key": "team", "value": "core"}])
    wait_stopped(ecs, arn)
    lines = [e["message"] for e in task_logs(server, arn)]
    found = [line[5:] for line in lines if line.startswith("TAGS ")]
    assert found, lines
    assert json.loads(found[0])["TaskTags"] == {"novalue": "", "team": "core"}
