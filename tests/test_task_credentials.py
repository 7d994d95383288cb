"""Task-role credentials as containers meet them: AWS_CONTAINER_CREDENTIALS_FULL_URI plus a
per-task AWS_CONTAINER_AUTHORIZATION_TOKEN, real session credentials that rotate like Fargate's,
and the agent's error responses."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import (
    Server,
    container,
    ecs_task_role,
    python_container,
    run_task,
    run_to_end,
    signed,
    task_logs,
    taskdef,
    wait_for,
    wait_stopped,
)

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# boto3's default credential chain, nothing else: no keys in the environment, no files.
SDK_SCRIPT = """
import boto3
sts = boto3.client("sts")
print("arn=" + sts.get_caller_identity()["Arn"], flush=True)
ecs = boto3.client("ecs")
print("clusters=" + str(len(ecs.list_clusters()["clusterArns"])), flush=True)
"""

PRINT_ENDPOINT = (
    "echo uri=$AWS_CONTAINER_CREDENTIALS_FULL_URI; echo token=$AWS_CONTAINER_AUTHORIZATION_TOKEN;"
    " sleep 60"
)


def fetch(uri: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": token} if token is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(uri, headers=headers)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _status_and_text(uri: str, token: str) -> tuple[int, str]:
    try:
        request = urllib.request.Request(uri, headers={"Authorization": token})
        with urllib.request.urlopen(request) as r:
            return r.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def endpoint_of(server: Server, task_arn: str) -> tuple[str, str]:
    """The credentials URI and token the task's container printed."""
    deadline = time.monotonic() + 30  # bounds a hang; a busy machine may take a while
    while time.monotonic() < deadline:
        lines = [e["message"] for e in task_logs(server, task_arn)]
        found = dict(line.split("=", 1) for line in lines if "=" in line)
        if "uri" in found and "token" in found:
            return found["uri"], found["token"]
        time.sleep(0.05)
    raise AssertionError("the container did not print its credentials endpoint")


def test_boto3_default_chain_in_a_container_gets_the_task_role(server: Server) -> None:
    task, lines = run_to_end(server, "creds-sdk", python_container(SDK_SCRIPT), role=True)
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert f"arn=arn:aws:sts::000000000000:assumed-role/creds-sdk/{task_id}" in lines, lines
    assert any(line.startswith("clusters=") for line in lines), lines
    assert task["containers"][0]["exitCode"] == 0


def test_endpoint_contract_and_errors(server: Server) -> None:
    ecs = server.ecs()
    role = ecs_task_role(server, "creds-contract")
    first = run_task(ecs, taskdef("creds-a", container("app", PRINT_ENDPOINT), taskRoleArn=role))
    second = run_task(ecs, taskdef("creds-b", container("app", PRINT_ENDPOINT), taskRoleArn=role))
    try:
        uri, token = endpoint_of(server, first)
        other_uri, other_token = endpoint_of(server, second)
        # Each task's endpoint has a listener of its own (a refuse fault closes it); the
        # daemon's port answers the same path for host clients.
        assert re.match(r"^http://127\.0\.0\.1:\d+/v2/credentials/[-0-9a-f]{36}$", uri), uri
        assert uri != other_uri and not uri.startswith(server.url + "/")
        path = uri[uri.index("/v2/credentials/") :]
        assert fetch(server.url + path, token)[0] == 200
        assert token != other_token

        status, body = fetch(uri, token)
        assert status == 200
        assert list(body) == ["RoleArn", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
        assert body["RoleArn"] == role
        assert body["AccessKeyId"].startswith("ASIA")
        assert RFC3339_Z.match(body["Expiration"]), body["Expiration"]

        # one task can never read another's credentials
        assert fetch(uri, other_token)[0] == 401
        assert fetch(uri, None)[0] == 401
        assert fetch(f"{server.url}/v2/credentials/", token) == (
            400,
            {
                "code": "NoIdInRequest",
                "message": "CredentialsV2Request: No Credential ID in the request",
            },
        )
        assert fetch(f"{server.url}/v2/credentials/not-an-id", token) == (
            400,
            {
                "code": "InvalidIdInRequest",
                "message": "CredentialsV2Request: Credentials not found",
            },
        )
    finally:
        for arn in (first, second):
            ecs.stop_task(task=arn)
    for arn in (first, second):
        wait_stopped(ecs, arn)
    # a stopped task's credentials id is gone, and so is its listener
    assert fetch(server.url + path, token)[1]["code"] == "InvalidIdInRequest"
    with pytest.raises(urllib.error.URLError) as refused:
        fetch(uri, token)
    assert isinstance(refused.value.reason, ConnectionRefusedError)


def _burst(uri: str, token: str, count: int) -> tuple[list[tuple[int, str]], float, float]:
    """``count`` requests sent at once from 16 threads, so the daemon's pace sets their rate,
    not one client's round trips (a busy machine slows those below the refill rate); their
    statuses and texts, with the times before the first was sent and after the last answer."""
    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: _status_and_text(uri, token), range(count)))
    return statuses, started, time.time()


LIMITED = (429, "You have reached maximum request limit.")


def test_rate_limit_like_the_agent(server: Server) -> None:
    ecs = server.ecs()
    role = ecs_task_role(server, "creds-rate")
    arn = run_task(ecs, taskdef("creds-rate", container("app", PRINT_ENDPOINT), taskRoleArn=role))
    try:
        uri, token = endpoint_of(server, arn)
        # Requests without the task's token are refused before they can spend its budget.
        assert {fetch(uri, "not-the-token")[0] for _ in range(90)} == {401}
        statuses, started, ended = _burst(uri, token, 300)
        ok = statuses.count((200, ""))
        # the burst of 60, and no more than 40/s refilled while they ran
        assert 60 <= ok <= 60 + 40 * (ended - started) + 1, (ok, ended - started)
        assert set(statuses) == {(200, ""), LIMITED}
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


def test_one_budget_for_all_of_a_tasks_endpoints(server: Server) -> None:
    # The agent's limiter wraps every path of its task metadata server: metadata requests
    # spend the same budget as credentials requests.
    ecs = server.ecs()
    role = ecs_task_role(server, "creds-budget")
    command = "echo meta=$ECS_CONTAINER_METADATA_URI_V4; " + PRINT_ENDPOINT
    arn = run_task(ecs, taskdef("creds-budget", container("app", command), taskRoleArn=role))
    try:
        uri, token = endpoint_of(server, arn)
        meta = next(
            e["message"][5:] for e in task_logs(server, arn) if e["message"].startswith("meta=")
        )
        assert [_status_and_text(meta, "")[0] for _ in range(45)] == [200] * 45
        # Metadata requests until the budget is spent (under 1 token at the first 429) ...
        statuses, spending, _ = _burst(meta, "", 100)
        assert LIMITED in statuses, statuses
        # ... leave credentials requests only what refilled since (under 1 token at that 429,
        # 40/s from then on), not a fresh 60.
        statuses, _, ended = _burst(uri, token, 100)
        ok = statuses.count((200, ""))
        print(f"credentials: {ok} of 100 in the {ended - spending:.2f} s since the metadata burst")
        assert ok <= 40 * (ended - spending) + 1, (ok, ended - spending)
        assert ok < 60 and LIMITED in statuses, (ok, ended - spending)
        time.sleep(1.6)  # 40/s refills it: however long this sleeps, the bucket has refilled
        assert _status_and_text(meta, "")[0] == 200
        assert LIMITED in _burst(meta, "", 100)[0]
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


def _expiration(creds: dict[str, Any]) -> float:
    """The served ``Expiration`` as epoch seconds (it is truncated to the second)."""
    return time.mktime(time.strptime(creds["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def test_credentials_rotate_and_old_ones_expire_on_time(fresh_server: Server) -> None:
    # Checked against the Expiration values served, by cause and effect on the one clock the
    # test and the daemon share: a fetch sent at t0 and answered at t1 was decided at some
    # daemon time in [t0, t1]. Nothing depends on how fast the machine is, except that the
    # old credentials are used within the lead (6 s) after they rotate.
    ttl, lead = 12, 6  # the lead is half the lifetime when that is under 30 min
    fresh_server.extra = ("--credential-ttl", str(ttl))
    server = fresh_server.start()
    ecs = server.ecs()
    role = ecs_task_role(server, "creds-rotate")
    arn = run_task(ecs, taskdef("creds-rotate", container("app", PRINT_ENDPOINT), taskRoleArn=role))
    uri, token = endpoint_of(server, arn)
    _, first = fetch(uri, token)
    expires = _expiration(first)  # the exact expiry is in [expires, expires + 1)
    # The same credentials are served until the lead time before their Expiration, fresh ones
    # from then on: poll until they change.
    while True:
        sent = time.time()
        _, current = fetch(uri, token)
        answered = time.time()
        if current["AccessKeyId"] != first["AccessKeyId"]:
            break
        assert current == first
        assert sent < expires + 1 - lead, "the same credentials were served inside the lead"
        assert answered < expires + 1, "the credentials expired and were never rotated"
        time.sleep(0.1)
    second = current
    assert answered >= expires - lead, "rotated before the lead time"
    assert second["Token"] != first["Token"]
    assert expires + ttl - lead - 1 <= _expiration(second) <= answered + ttl

    def caller(creds: dict[str, Any]) -> Any:
        return server.client(
            "sts", key=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["Token"]
        )

    # the old credentials still work until their own Expiration ...
    assert time.time() < expires, "the machine stalled for the whole lead time"
    assert caller(first).get_caller_identity()["Arn"].endswith(arn.rsplit("/", 1)[-1])
    time.sleep(max(0.0, expires + 1 - time.time()))
    # ... and are refused after it, while the new ones work
    with pytest.raises(ClientError) as info:
        caller(first).get_caller_identity()
    assert info.value.response["Error"]["Code"] == "ExpiredToken"
    assert time.time() < _expiration(second), "the machine stalled for the whole lead time"
    assert (
        caller(second)
        .get_caller_identity()["Arn"]
        .startswith("arn:aws:sts::000000000000:assumed-role/creds-rotate/")
    )
    ecs.stop_task(task=arn)
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "STOPPED")


STATIC_LOOP = """
import time, boto3
from botocore.exceptions import ClientError
sts = boto3.client("sts")
for _ in range(100):
    try:
        print("ok " + sts.get_caller_identity()["Arn"], flush=True)
    except ClientError as e:
        print("error " + e.response["Error"]["Code"], flush=True)
        break
    time.sleep(0.2)
"""


def test_static_keys_shadow_the_role_and_expire_the_classic_fargate_bug(
    server: Server, tmp_path: Any
) -> None:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {
                        "Service": "ecs-tasks.amazonaws.com",
                        "AWS": "arn:aws:iam::000000000000:root",
                    },
                }
            ],
        }
    )
    role = ecs_task_role(server, "creds-static", trust)
    # The first credentials, handed to the container as plain environment variables.
    session = server.client("sts").assume_role(RoleArn=role, RoleSessionName="baked-in")
    creds = session["Credentials"]
    env = [
        {"name": "AWS_ACCESS_KEY_ID", "value": creds["AccessKeyId"]},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": creds["SecretAccessKey"]},
        {"name": "AWS_SESSION_TOKEN", "value": creds["SessionToken"]},
    ]
    definition = taskdef(
        "creds-static",
        {
            "name": "app",
            "image": "python",
            "memory": 256,
            "environment": env,
            "command": [sys.executable, "-c", STATIC_LOOP],
        },
        taskRoleArn=role,
    )
    path = tmp_path / "taskdef.json"
    path.write_text(json.dumps(definition))
    out = server.cli("run", str(path), "-d")
    assert out.returncode == 0, out.stderr
    arn = out.stdout.strip()
    # said when the task starts
    assert "warning: container 'app' has AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY," in out.stderr
    assert "ExpiredToken" in out.stderr
    extras = signed(f"{server.url}/_ecslocal/v1/tasks/{arn.rsplit('/', 1)[-1]}")
    with urllib.request.urlopen(extras) as r:
        diagnostics = json.loads(r.read())["diagnostics"]
    assert len(diagnostics) == 1 and diagnostics[0].startswith(
        "container 'app' has AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN in its"
        f" environment and the task has the task role {role}"
    ), diagnostics
    described = server.cli("describe", arn)
    assert json.loads(described.stdout)["taskArn"] == arn
    assert f"warning: {diagnostics[0][:60]}" in " ".join(described.stderr.split())
    ecs = server.ecs()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = [e["message"] for e in task_logs(server, arn)]
        if any(line.startswith("ok ") for line in lines):
            break
        time.sleep(0.1)
    # the SDK used the baked-in session, not the task role
    assert lines[0] == f"ok {session['AssumedRoleUser']['Arn']}", lines
    # ... until that session expires: nothing refreshes environment credentials
    request = signed(
        urllib.request.Request(
            f"{server.url}/_ecslocal/v1/access-keys/{creds['AccessKeyId']}/expire", method="POST"
        )
    )
    urllib.request.urlopen(request).close()
    task = wait_stopped(ecs, arn, timeout=30)
    lines = [e["message"] for e in task_logs(server, arn)]
    assert lines[-1] == "error ExpiredToken", lines
    assert task["containers"][0]["exitCode"] == 0


ROTATION_LOOP = """
import time, boto3
session = boto3.Session()
sts, ecs = session.client("sts"), session.client("ecs")
for _ in range(14):
    arn = sts.get_caller_identity()["Arn"]
    ecs.list_clusters()
    key = session.get_credentials().get_frozen_credentials().access_key
    print(f"ok {key} {arn}", flush=True)
    time.sleep(1)
"""


def test_boto3_keeps_working_across_rotations(fresh_server: Server) -> None:
    # 6 s lifetime, fresh credentials from 3 s before expiry: a rotation every ~3 s, so the
    # 14 s loop sees at least 3 of them; botocore refreshes through the container provider.
    fresh_server.extra = ("--credential-ttl", "6")
    server = fresh_server.start()
    task, lines = run_to_end(server, "creds-loop", python_container(ROTATION_LOOP), role=True)
    assert task["containers"][0]["exitCode"] == 0, lines
    oks = [line.split() for line in lines if line.startswith("ok ")]
    assert len(oks) == 14, lines
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert {o[2] for o in oks} == {f"arn:aws:sts::000000000000:assumed-role/creds-loop/{task_id}"}
    keys = list(dict.fromkeys(o[1] for o in oks))
    assert len(keys) >= 4, keys  # the first credentials and at least 3 rotations


JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@aws-sdk").is_dir(),
    reason="needs node and the AWS SDK for JavaScript v3 (`npm ci --prefix tests/js`, which"
    " .ci/run does)",
)
def test_js_sdk_v3_keeps_working_across_rotations(fresh_server: Server) -> None:
    fresh_server.extra = ("--credential-ttl", "6")
    server = fresh_server.start()
    node = str(shutil.which("node"))
    app = {
        "name": "app",
        "image": "node",
        "memory": 512,
        "command": [node, str(JS_DIR / "rotation.js"), "14"],
    }
    task, lines = run_to_end(server, "creds-js", app, role=True, timeout=90)
    assert task["containers"][0]["exitCode"] == 0, lines
    oks = [line.split() for line in lines if line.startswith("ok ")]
    assert len(oks) == 14, lines
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert {o[2] for o in oks} == {f"arn:aws:sts::000000000000:assumed-role/creds-js/{task_id}"}
    assert len(dict.fromkeys(o[1] for o in oks)) >= 4, oks


def test_per_task_credential_lifetime_tag(server: Server) -> None:
    ecs = server.ecs()
    role = ecs_task_role(server, "creds-tag")
    definition = taskdef("creds-tag", container("app", PRINT_ENDPOINT), taskRoleArn=role)
    started = time.time()
    arn = run_task(ecs, definition, tags=[{"key": "ecslocal:credential-ttl", "value": "900"}])
    try:
        uri, token = endpoint_of(server, arn)
        _, body = fetch(uri, token)
        # issued as the task started: 900 s after a time between RunTask and the fetch
        assert started + 900 - 1 <= _expiration(body) <= time.time() + 900, body
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)
    with pytest.raises(ClientError) as info:
        run_task(ecs, definition, tags=[{"key": "ecslocal:credential-ttl", "value": "soon"}])
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"


# The classic Fargate bug as entrypoints write it: read the task's credentials once, export
# them, start the app. The SDK's default chain then prefers the environment over the (still
# available) container provider, and nothing refreshes what the environment holds.
EXPORT_THEN_RUN = """
import json, os, sys, urllib.request
request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
    headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
creds = json.load(urllib.request.urlopen(request))
os.environ.update(AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds[
    "SecretAccessKey"], AWS_SESSION_TOKEN=creds["Token"])
print("expires " + creds["Expiration"], flush=True)
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
"""


def test_first_credentials_exported_at_start_expire_with_expiredtoken(server: Server) -> None:
    task, lines = run_to_end(
        server,
        "creds-export",
        python_container(EXPORT_THEN_RUN, STATIC_LOOP),
        role=True,
        tags=[{"key": "ecslocal:credential-ttl", "value": "4"}],
    )
    events = task_logs(server, task["taskArn"])
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert lines[1] == f"ok arn:aws:sts::000000000000:assumed-role/creds-export/{task_id}", lines
    assert lines[-1] == "error ExpiredToken", lines
    # ... when the exported credentials' own Expiration came, not before.
    expires = time.mktime(time.strptime(lines[0].split()[1], "%Y-%m-%dT%H:%M:%SZ"))
    expires -= time.timezone
    assert events[-1]["timestamp"] / 1000 >= expires - 1
    assert task["containers"][0]["exitCode"] == 0


def test_credentials_uninitialized_when_they_cannot_be_issued(server: Server) -> None:
    ecs = server.ecs()
    iam = server.client("iam")
    role = ecs_task_role(server, "creds-gone")
    arn = run_task(ecs, taskdef("creds-gone", container("app", PRINT_ENDPOINT), taskRoleArn=role))
    try:
        uri, token = endpoint_of(server, arn)
        assert fetch(uri, token)[0] == 200
        iam.delete_role(RoleName="creds-gone")
        # The current credentials expire; fresh ones cannot be issued for a deleted role.
        assert server.cli("fault", "expire-credentials", arn).returncode == 0
        assert fetch(uri, token) == (
            503,
            {
                "code": "CredentialsUninitialized",
                "message": "CredentialsV2Request: Credentials uninitialized for ID",
            },
        )
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


def test_listening_on_every_address_containers_get_a_loopback_uri(fresh_server: Server) -> None:
    fresh_server.extra = ("--host", "0.0.0.0")
    server = fresh_server.start()
    _, lines = run_to_end(server, "creds-anyaddr", python_container(SDK_SCRIPT), role=True)
    assert any(line.startswith("arn=arn:aws:sts::000000000000:assumed-role/") for line in lines), (
        lines
    )
