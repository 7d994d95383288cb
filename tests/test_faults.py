"""Failures on demand: the credentials endpoint, task metadata and STS misbehave when asked,
for as long as asked, for one task or all; `ecslocal fault` drives the same API."""

from __future__ import annotations

import http.client
import json
import re
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
    run_to_end,
    signed,
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
    request = signed(
        urllib.request.Request(
            f"{server.url}/_ecslocal/v1/faults", data=json.dumps(body).encode(), method="POST"
        )
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
        status, fault = _post(
            server, {"target": "credentials", "kind": "refuse", "task": a, "durationSeconds": 1.5}
        )
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

        _post(
            server, {"target": "credentials", "kind": "slow", "delayMs": 400, "durationSeconds": 10}
        )
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
    for name, env in (("default", []), ("patient", [{"name": "AWS_MAX_ATTEMPTS", "value": "12"}])):
        definition = taskdef(
            f"faults-sts-{name}",
            {
                "name": "app",
                "image": "python",
                "memory": 256,
                "environment": env,
                "command": [sys.executable, "-c", STS_AT_START],
            },
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
            status, fault = _post(
                server, {"target": "metadata", "kind": kind, "task": arn, "durationSeconds": 30}
            )
            assert status == 201, fault
            assert _get(meta)[0] == expected, kind
            server.cli("fault", "clear", fault["id"])
        _post(server, {"target": "metadata", "kind": "slow", "delayMs": 300, "durationSeconds": 30})
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
            "sts",
            key=(creds["AccessKeyId"], creds["SecretAccessKey"]),
            token=creds["Token"],
            config=once,
        )
        as_root = server.client("sts", config=once)
        status, fault = _post(
            server, {"target": "sts", "kind": "http-503", "task": arn, "durationSeconds": 30}
        )
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


# -- refuse is a TCP refusal, scoped to its task -----------------------------------------------
CALL = re.compile(r"^call (\d+): (.*)$")


def calls(server: Server, arn: str) -> list[tuple[int, str]]:
    """The ``call N: outcome`` lines a task's app printed, in order."""
    out = []
    for event in task_logs(server, arn):
        m = CALL.match(event["message"])
        if m:
            out.append((int(m[1]), m[2]))
    return out


def wait_call(
    server: Server, arn: str, ok: bool | None, after: int = 0, timeout: float = 60
) -> tuple[int, str]:
    """The first call numbered above ``after`` that succeeded (``ok``), failed (not ``ok``),
    or either (None)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = calls(server, arn)
        for n, outcome in seen:
            if n > after and (ok is None or outcome.startswith("error") != ok):
                return n, outcome
        assert time.monotonic() < deadline, seen[-20:]
        time.sleep(0.1)


def refuse_one_task(
    server: Server, target: str, definition: dict[str, Any], role: str
) -> tuple[str, str]:
    """Task A calls ``target`` in a loop; a ``refuse`` fault scoped to A: A's calls fail (the
    error is returned), a task B started during the fault is not refused (its first call's
    outcome is returned), and A's calls succeed again once the fault is cleared."""
    ecs = server.ecs()
    a = run_task(ecs, taskdef(f"{definition['name']}-a", definition, taskRoleArn=role))
    b = None
    try:
        n_ok, _ = wait_call(server, a, ok=True)
        status, fault = _post(
            server, {"target": target, "kind": "refuse", "task": a, "durationSeconds": 300}
        )
        assert status == 201, fault
        n_refused, refused = wait_call(server, a, ok=False, after=n_ok)
        b = run_task(ecs, taskdef(f"{definition['name']}-b", definition, taskRoleArn=role))
        _, first_of_b = wait_call(server, b, ok=None)
        assert server.cli("fault", "clear", fault["id"]).stdout.strip() == "cleared 1"
        wait_call(server, a, ok=True, after=n_refused)
        return refused, first_of_b
    finally:
        for arn in (a, b):
            if arn is not None:
                ecs.stop_task(task=arn)
                wait_stopped(ecs, arn)


# botocore's container credentials provider, as the default chain builds it (its fetcher tries
# 3 times) but without the fetcher's 1 s sleeps between attempts.
BOTOCORE_CREDENTIALS_LOOP = """
import itertools, time
from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher

provider = ContainerProvider(fetcher=ContainerMetadataFetcher(sleep=lambda s: None))
for call in itertools.count(1):
    try:
        key = provider.load().get_frozen_credentials().access_key
        print(f"call {call}: key {key}", flush=True)
    except Exception as error:
        chain, e = [], error
        while e is not None:  # botocore's message, and what it was raised from
            chain.append(f"{type(e).__name__}: {e}")
            e = e.__cause__ or e.__context__
        print(f"call {call}: error: " + " <- ".join(chain), flush=True)
    time.sleep(0.1)
"""


def test_refused_credentials_are_a_connection_refused_for_botocore_and_for_one_task_only(
    server: Server,
) -> None:
    """botocore's container provider meets a TCP refusal (``[Errno 111] Connection refused``
    under its "Could not connect to the endpoint URL"), not a connection that is accepted and
    dropped ("Connection was closed before we received a valid response"); a task started
    during the fault, scoped to another task, gets its credentials."""
    role = ecs_task_role(server, "faults-refuse-creds")
    app = {
        "name": "creds-refuse",
        "image": "python",
        "memory": 256,
        "command": [sys.executable, "-c", BOTOCORE_CREDENTIALS_LOOP],
    }
    refused, first_of_b = refuse_one_task(server, "credentials", app, role)
    assert "Connection refused" in refused, refused
    assert "Could not connect to the endpoint URL" in refused, refused
    assert first_of_b.startswith("key ASIA"), first_of_b


def test_sts_endpoint_of_the_task_unless_the_definition_names_its_own(server: Server) -> None:
    """Containers get their task's STS listener in AWS_ENDPOINT_URL_STS; a definition that sets
    AWS_ENDPOINT_URL keeps it for STS too (the service-specific variable would win over it)."""
    show = container("app", 'echo "sts=$AWS_ENDPOINT_URL_STS all=$AWS_ENDPOINT_URL"')
    own = {**show, "environment": [{"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.9:1"}]}
    _, lines = run_to_end(server, "faults-sts-env", show)
    m = re.fullmatch(r"sts=(http://127\.0\.0\.1:\d+) all=(\S+)", lines[-1])
    assert m and m[2] == server.url and m[1] != server.url, lines
    _, lines = run_to_end(server, "faults-sts-env-own", own)
    assert lines[-1] == "sts= all=http://127.0.0.9:1", lines
