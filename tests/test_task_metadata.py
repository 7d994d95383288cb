"""Task metadata v4/v3 as a container reads it from $ECS_CONTAINER_METADATA_URI_V4."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from tests.conftest import Server, run_task, task_logs, taskdef, wait_stopped

READER = """
import json, os, time, urllib.request
base = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
assert os.environ["ECS_CONTAINER_METADATA_URI"].replace("/v3/", "/v4/") == base
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return json.loads(r.read())
big = bytearray(20 * 1024 * 1024)  # some memory the stats should see
time.sleep(0.3)
out = {"container": get(""), "task": get("/task"), "tags": get("/taskWithTags"),
       "stats": get("/stats"), "task_stats": get("/task/stats"),
       "v3": get("").get("DockerId") == get("")["DockerId"]}
print("META " + json.dumps(out), flush=True)
"""


def _metadata(server: Server, **fields: Any) -> tuple[str, dict[str, Any]]:
    ecs = server.ecs()
    definition = taskdef(
        "meta",
        {"name": "reader", "image": "python:3.11", "memory": 256,
         "command": [sys.executable, "-c", READER],
         "logConfiguration": {"logDriver": "awslogs", "options": {
             "awslogs-group": "/ecs/meta", "awslogs-region": "us-east-1",
             "awslogs-stream-prefix": "m"}}},
        {"name": "side", "image": "busybox", "memory": 64, "essential": False,
         "command": ["sleep", "30"]},
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
    assert c["CreatedAt"].endswith("Z") and c["StartedAt"].endswith("Z")
    assert c["ContainerARN"].startswith("arn:aws:ecs:us-east-1:000000000000:container/")

    t = meta["task"]
    assert t["TaskARN"] == arn and t["Family"] == "meta" and isinstance(t["Revision"], str)
    assert t["Cluster"] == "arn:aws:ecs:us-east-1:000000000000:cluster/default"
    assert t["KnownStatus"] == "RUNNING" and t["LaunchType"] == "EC2"
    assert t["Limits"] == {"CPU": 0.5, "Memory": 1024}
    assert sorted(x["Name"] for x in t["Containers"]) == ["reader", "side"]
    assert "TaskTags" not in t
    assert meta["tags"]["TaskTags"] == {"team": "core"}


def test_stats_come_from_the_real_process(server: Server) -> None:
    _, meta = _metadata(server)
    stats = meta["stats"]
    assert stats["memory_stats"]["usage"] > 20 * 1024 * 1024
    assert stats["memory_stats"]["limit"] == 256 * 1024 * 1024
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["pids_stats"]["current"] >= 1
    assert set(meta["task_stats"]) == {x["DockerId"] for x in meta["task"]["Containers"]}


def test_unknown_endpoint_id_is_404_like_the_agent(server: Server) -> None:
    try:
        urllib.request.urlopen(f"{server.url}/v4/nope")
    except urllib.error.HTTPError as error:
        assert error.code == 404
        assert json.loads(error.read()) == (
            "V4 container metadata handler: unable to get container ID from request: unable to"
            " get docker ID from v3 endpoint ID: nope"
        )
    else:
        raise AssertionError("expected 404")


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
        {"name": "app", "image": "python", "memory": 128,
         "command": [sys.executable, "-c", PROTECT]},
        taskRoleArn=role,
    )
    arn = run_task(ecs, definition)
    wait_stopped(ecs, arn)
    line = next(e["message"] for e in task_logs(server, arn) if e["message"].startswith("PROT "))
    first, put, got, bad, off = json.loads(line[5:])
    assert first == [200, {"protection": {"ExpirationDate": None, "ProtectionEnabled": False,
                                          "TaskArn": arn}}]
    assert put[0] == 200 and put[1]["protection"]["ProtectionEnabled"] is True
    assert put[1]["protection"]["ExpirationDate"].endswith("Z")
    assert got[1] == put[1]
    assert bad[0] == 400 and bad[1]["error"]["Message"] == (
        "Invalid request: does not contain 'ProtectionEnabled' field"
    )
    assert off[1]["protection"]["ProtectionEnabled"] is False
