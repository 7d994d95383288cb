"""Failures on demand: the credentials endpoint, task metadata and STS misbehave when asked,
for as long as asked, for one task or all; `ecslocal fault` drives the same API."""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import (
    Server,
    container,
    ecs_task_role,
    run_task,
    task_logs,
    taskdef,
    wait_stopped,
)
from tests.test_task_credentials import PRINT_ENDPOINT, endpoint_of, fetch


def _task_with_role(server: Server, name: str) -> tuple[str, str, str]:
    ecs = server.ecs()
    role = ecs_task_role(server, "faults-role")
    arn = run_task(ecs, taskdef(name, container("app", PRINT_ENDPOINT), taskRoleArn=role))
    uri, token = endpoint_of(server, arn)
    return arn, uri, token


def _post(server: Server, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{server.url}/_ecslocal/v1/faults", data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _refused(uri: str, token: str) -> bool:
    try:
        fetch(uri, token)
    except (http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError):
        return True
    return False


def test_credentials_faults_scoped_to_one_task_and_timed(fresh_server: Server) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    a, uri_a, token_a = _task_with_role(server, "faults-a")
    b, uri_b, token_b = _task_with_role(server, "faults-b")
    try:
        status, fault = _post(server, {"target": "credentials", "kind": "refuse",
                                       "task": a, "durationSeconds": 1.5})
        assert status == 201 and fault["task"] == a.rsplit("/", 1)[-1]
        assert _refused(uri_a, token_a)
        assert fetch(uri_b, token_b)[0] == 200  # the other task is not touched
        time.sleep(1.6)
        assert fetch(uri_a, token_a)[0] == 200  # over when its time is up

        out = server.cli("fault", "add", "credentials", "http-503", "--duration", "30")
        assert out.returncode == 0, out.stderr
        fault_id = out.stdout.strip()
        assert fetch(uri_a, token_a)[0] == 503 and fetch(uri_b, token_b)[0] == 503
        listed = server.cli("fault", "ls").stdout
        assert fault_id in listed and "credentials http-503" in listed
        assert server.cli("fault", "clear", fault_id).stdout.strip() == "cleared 1"
        assert fetch(uri_a, token_a)[0] == 200

        _post(server, {"target": "credentials", "kind": "slow", "delayMs": 400,
                       "durationSeconds": 10})
        began = time.monotonic()
        assert fetch(uri_b, token_b)[0] == 200
        assert time.monotonic() - began >= 0.4
        server.cli("fault", "clear")
    finally:
        for arn in (a, b):
            ecs.stop_task(task=arn)
            wait_stopped(ecs, arn)


def test_expire_credentials_now(server: Server) -> None:
    ecs = server.ecs()
    arn, uri, token = _task_with_role(server, "faults-expire")
    try:
        _, before = fetch(uri, token)
        sts = server.client(
            "sts", key=(before["AccessKeyId"], before["SecretAccessKey"]), token=before["Token"]
        )
        assert sts.get_caller_identity()["Arn"].endswith(arn.rsplit("/", 1)[-1])
        out = server.cli("fault", "expire-credentials", arn)
        assert out.returncode == 0, out.stderr
        with pytest.raises(ClientError) as info:
            sts.get_caller_identity()
        assert info.value.response["Error"]["Code"] == "ExpiredToken"
        _, after = fetch(uri, token)
        assert after["AccessKeyId"] != before["AccessKeyId"]
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


def test_metadata_fault(server: Server) -> None:
    status, out = _post(server, {"target": "metadata", "kind": "bogus"})
    assert status == 400 and "kind for metadata must be one of" in out["message"]
    assert _post(server, {"target": "nope", "kind": "refuse"})[0] == 400


STS_AT_START = """
import sys, time, boto3
began = time.monotonic()
try:
    arn = boto3.client("sts").get_caller_identity()["Arn"]
except Exception as error:
    print(f"gave up after {time.monotonic() - began:.1f} s: {type(error).__name__}", flush=True)
    sys.exit(1)
print(f"got through after {time.monotonic() - began:.1f} s: {arn}", flush=True)
"""


def test_sts_refusing_at_start_default_retries_give_up_raised_attempts_get_through(
    server: Server,
) -> None:
    """The sidecar-not-ready race: the app's first STS call meets an endpoint that refuses
    connections for 16 s. botocore's default (legacy) retries sleep at most 1+2+4+8 = 15 s in
    all, so they give up; the same app with AWS_MAX_ATTEMPTS=12 in its environment outlasts it."""
    ecs = server.ecs()
    role = ecs_task_role(server, "faults-sts-start")
    status, _ = _post(server, {"target": "sts", "kind": "refuse", "durationSeconds": 16})
    assert status == 201
    arns = {}
    for name, env in (("default", []), ("patient", [{"name": "AWS_MAX_ATTEMPTS",
                                                      "value": "12"}])):
        definition = taskdef(
            f"faults-sts-{name}",
            {"name": "app", "image": "python", "memory": 256, "environment": env,
             "command": [sys.executable, "-c", STS_AT_START]},
            taskRoleArn=role,
        )
        arns[name] = run_task(ecs, definition)
    default = wait_stopped(ecs, arns["default"], timeout=60)
    patient = wait_stopped(ecs, arns["patient"], timeout=60)
    default_lines = [e["message"] for e in task_logs(server, arns["default"])]
    patient_lines = [e["message"] for e in task_logs(server, arns["patient"])]
    assert default["containers"][0]["exitCode"] == 1, default_lines
    assert default_lines[-1].startswith("gave up after"), default_lines
    assert float(default_lines[-1].split()[3]) < 16
    assert patient["containers"][0]["exitCode"] == 0, patient_lines
    assert patient_lines[-1].startswith("got through after"), patient_lines
    assert float(patient_lines[-1].split()[3]) >= 14  # it waited for STS to come back


METADATA_URI = "echo meta=$ECS_CONTAINER_METADATA_URI_V4; sleep 60"


def _get(url: str) -> tuple[int, float]:
    """Status of a GET (0 when the connection is closed without an answer) and its seconds."""
    began = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, time.monotonic() - began
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - began
    except (http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError):
        return 0, time.monotonic() - began


def test_every_metadata_and_credentials_fault_kind(server: Server) -> None:
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("faults-kinds", container("app", METADATA_URI)))
    cred_arn, uri, token = _task_with_role(server, "faults-kinds-creds")
    try:
        deadline = time.monotonic() + 10
        while True:
            lines = [e["message"] for e in task_logs(server, arn)]
            meta = next((line[5:] for line in lines if line.startswith("meta=")), None)
            if meta or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert meta, lines
        assert _get(meta)[0] == 200
        for kind, expected in (("refuse", 0), ("http-500", 500)):
            status, fault = _post(server, {"target": "metadata", "kind": kind, "task": arn,
                                           "durationSeconds": 30})
            assert status == 201, fault
            assert _get(meta)[0] == expected, kind
            server.cli("fault", "clear", fault["id"])
        _post(server, {"target": "metadata", "kind": "slow", "delayMs": 300,
                       "durationSeconds": 30})
        status, seconds = _get(meta)
        assert status == 200 and seconds >= 0.3
        server.cli("fault", "clear")
        assert _get(meta)[0] == 200

        _post(server, {"target": "credentials", "kind": "http-500", "durationSeconds": 30})
        status, body = fetch(uri, token)
        assert (status, body["code"]) == (500, "InternalServerError")
        server.cli("fault", "clear")
        assert fetch(uri, token)[0] == 200
    finally:
        server.cli("fault", "clear")
        for task in (arn, cred_arn):
            ecs.stop_task(task=task)
            wait_stopped(ecs, task)


def test_sts_faults_for_one_task_and_for_all(server: Server) -> None:
    ecs = server.ecs()
    arn, uri, token = _task_with_role(server, "faults-sts")
    try:
        _, creds = fetch(uri, token)
        once = Config(retries={"total_max_attempts": 1})
        as_task = server.client(
            "sts", key=(creds["AccessKeyId"], creds["SecretAccessKey"]),
            token=creds["Token"], config=once,
        )
        as_root = server.client("sts", config=once)
        status, fault = _post(server, {"target": "sts", "kind": "http-503", "task": arn,
                                       "durationSeconds": 30})
        assert status == 201, fault
        # The task's own credentials say which task calls: only its requests are refused.
        with pytest.raises(ClientError) as info:
            as_task.get_caller_identity()
        assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert as_root.get_caller_identity()["Account"] == "000000000000"
        server.cli("fault", "clear")
        assert as_task.get_caller_identity()["Arn"].endswith(arn.rsplit("/", 1)[-1])

        _post(server, {"target": "sts", "kind": "slow", "delayMs": 300, "durationSeconds": 30})
        began = time.monotonic()
        as_root.get_caller_identity()
        assert time.monotonic() - began >= 0.3
    finally:
        server.cli("fault", "clear")
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


def test_imds_faults_cannot_be_scoped_to_a_task(server: Server) -> None:
    status, body = _post(server, {"target": "imds", "kind": "refuse", "task": "abc"})
    assert status == 400
    assert body["message"] == "imds faults are for every task: IMDS cannot tell which task asks"
