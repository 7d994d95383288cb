"""ecslocal's own API (/_ecslocal/v1) is not open: SigV4 with a long-term key of the account
(service "ecslocal"), never session credentials; only health (and the OIDC issuer's public
documents) unsigned; one error shape, {"message"} with the status (api/local_auth.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import (
    ROOT,
    TRUST_ACCOUNT,
    Server,
    container,
    ecs_task_role,
    python_container,
    run_task,
    signed,
    task_logs,
    taskdef,
    wait_for,
    wait_stopped,
)

KEY = ("AKIAEXAMPLELOCAL0001", "n0t-the-default-secret")

#: (method, path) of every route that takes a signature; {task} is a real task's id.
PROTECTED = [
    ("GET", "/_ecslocal/v1/faults"),
    ("POST", "/_ecslocal/v1/faults"),
    ("DELETE", "/_ecslocal/v1/faults"),
    ("DELETE", "/_ecslocal/v1/faults/abc"),
    ("GET", "/_ecslocal/v1/tasks/{task}"),
    ("GET", "/_ecslocal/v1/tasks/{task}/logs"),
    ("POST", "/_ecslocal/v1/oidc/token"),
    ("POST", "/_ecslocal/v1/access-keys/ASIAEXAMPLE/expire"),
    ("GET", "/_ecslocal/v1/no-such-route"),
]


def _call(request: urllib.request.Request | str) -> tuple[int, dict[str, Any], Any]:
    """Status, headers and JSON body of a call to the local API."""
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def _request(
    server: Server, method: str, path: str, body: dict[str, Any] | None = None
) -> urllib.request.Request:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    return urllib.request.Request(server.url + path, data=data, headers=headers, method=method)


def _sleeping_task(server: Server, family: str) -> str:
    return run_task(server.ecs(), taskdef(family, container("app", "sleep 60")))


def _session(server: Server) -> dict[str, Any]:
    iam = server.client("iam")
    name = f"local-api-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_ACCOUNT)["Role"]["Arn"]
    return server.client("sts").assume_role(RoleArn=arn, RoleSessionName="local-api")["Credentials"]


def test_unsigned_requests_are_refused_with_401_and_one_error_shape(server: Server) -> None:
    ecs = server.ecs()
    arn = _sleeping_task(server, "local-unsigned")
    task_id = arn.rsplit("/", 1)[-1]
    try:
        for method, path in PROTECTED:
            status, headers, body = _call(_request(server, method, path.format(task=task_id)))
            assert status == 401, (method, path, status, body)
            assert set(body) == {"message"}, body
            assert body["message"].startswith("Missing Authentication Token."), body
            assert "service 'ecslocal', region 'us-east-1'" in body["message"]
            assert headers["WWW-Authenticate"].startswith("AWS4-HMAC-SHA256")
        # ... and nothing was done: no fault added
        assert _call(signed(server.url + "/_ecslocal/v1/faults"))[2]["faults"] == []
    finally:
        ecs.stop_task(task=arn)
    # open: the health probe, and the OIDC issuer's public documents (OIDC Discovery 1.0 §4)
    assert _call(server.url + "/_ecslocal/v1/health")[2]["status"] == "ok"
    discovery = _call(server.url + "/_ecslocal/v1/oidc/.well-known/openid-configuration")[2]
    assert _call(discovery["jwks_uri"])[2]["keys"]


def test_wrongly_signed_requests_are_refused_with_401(server: Server) -> None:
    url = server.url + "/_ecslocal/v1/faults"
    cases = {
        "bad secret": signed(url, key=("test", "not-test")),
        "unknown key": signed(url, key=("AKIANOSUCHKEY0000000", "x")),
        "other region": signed(url, region="eu-west-1"),
    }
    for name, request in cases.items():
        status, _, body = _call(request)
        assert status == 401, (name, status, body)
        assert set(body) == {"message"}, body
    assert "does not match the signature you provided" in _call(cases["bad secret"])[2]["message"]
    assert _call(cases["unknown key"])[2]["message"].startswith(
        "The security token included in the request is invalid."
    )
    # signed for another service (ECS's scope) is not a signature for this one
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    aws = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(aws)
    status, _, body = _call(urllib.request.Request(url, headers=dict(aws.headers.items())))
    assert status == 401 and "Credential should be scoped to correct service" in body["message"]
    # a body changed after signing
    request = signed(_request(server, "POST", "/_ecslocal/v1/faults", {"target": "sts"}))
    request.data = json.dumps({"target": "credentials", "kind": "http-500"}).encode()
    assert _call(request)[0] == 401
    assert _call(signed(url))[0] == 200  # the right signature


def test_session_credentials_are_refused_with_403(server: Server) -> None:
    creds = _session(server)
    key = (creds["AccessKeyId"], creds["SecretAccessKey"])
    body = {"target": "sts", "kind": "http-503", "durationSeconds": 30}
    for method, path, payload in [
        ("POST", "/_ecslocal/v1/faults", body),
        ("GET", "/_ecslocal/v1/faults", None),
        ("POST", "/_ecslocal/v1/oidc/token", {"sub": "x"}),
    ]:
        request = signed(_request(server, method, path, payload), key, creds["SessionToken"])
        status, _, answer = _call(request)
        assert status == 403, (path, status, answer)
        assert set(answer) == {"message"}
        assert answer["message"].startswith(f"Access key {key[0]} is a session credential")
        assert "long-term access keys of the account only" in answer["message"]
    # the same session still works where AWS takes it
    sts = server.client("sts", key=key, token=creds["SessionToken"])
    assert ":assumed-role/" in sts.get_caller_identity()["Arn"]
    assert _call(signed(server.url + "/_ecslocal/v1/faults"))[2]["faults"] == []


ATTACKER = """
import json, os, sys, urllib.error, urllib.request
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
url = os.environ["AWS_ENDPOINT_URL"] + "/_ecslocal/v1/faults"
body = json.dumps({"target": "credentials", "kind": "http-500", "task": sys.argv[1]}).encode()
def post(headers):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
unsigned = post({"Content-Type": "application/json"})
creds = boto3.Session().get_credentials().get_frozen_credentials()  # the task role's
aws = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
SigV4Auth(creds, "ecslocal", os.environ["AWS_REGION"]).add_auth(aws)
role = post(dict(aws.headers.items()))
print("RESULT " + json.dumps({"unsigned": unsigned, "role": role, "key": creds.access_key[:4]}),
      flush=True)
"""


def test_a_container_cannot_add_a_fault_on_another_task(server: Server) -> None:
    ecs = server.ecs()
    victim = _sleeping_task(server, "local-victim")
    victim_id = victim.rsplit("/", 1)[-1]
    try:
        role = ecs_task_role(server, "local-attacker")
        attacker = run_task(
            ecs, taskdef("local-attacker", python_container(ATTACKER, victim), taskRoleArn=role)
        )
        wait_stopped(ecs, attacker)
        lines = [e["message"] for e in task_logs(server, attacker)]
        results = [json.loads(line[7:]) for line in lines if line.startswith("RESULT ")]
        assert results == [{"unsigned": 401, "role": 403, "key": "ASIA"}], lines
        faults = _call(signed(server.url + "/_ecslocal/v1/faults"))[2]["faults"]
        assert [f for f in faults if f["task"] == victim_id] == []
        assert wait_for(ecs, victim, lambda t: t["lastStatus"] == "RUNNING")
    finally:
        ecs.stop_task(task=victim)


def test_unknown_task_is_404_in_the_local_api_shape(server: Server) -> None:
    for path in ("/_ecslocal/v1/tasks/nosuchtask", "/_ecslocal/v1/tasks/nosuchtask/logs"):
        status, _, body = _call(signed(server.url + path))
        assert (status, body) == (404, {"message": "Task nosuchtask was not found."})
    status, headers, body = _call(signed(_request(server, "GET", "/_ecslocal/v1/faults/x")))
    assert status == 405 and headers["Allow"] == "DELETE" and set(body) == {"message"}


def test_logs_after_that_is_not_a_sequence_number_is_a_clean_400(server: Server) -> None:
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("local-after", container("app", "echo one; echo two")))
    wait_stopped(ecs, arn)
    task_id = arn.rsplit("/", 1)[-1]
    base = f"{server.url}/_ecslocal/v1/tasks/{task_id}/logs"
    message = "after must be a log sequence number: an integer from 0 to 9223372036854775807"
    for after in ("abc", "-1", "1.5", str(2**63), "9" * 400):
        for follow in ("0", "1"):
            status, headers, body = _call(signed(f"{base}?after={after}&follow={follow}"))
            assert (status, body) == (400, {"message": message}), (after, status, body)
            assert headers["Content-Type"].startswith("application/json")
    events = _events(base)
    assert [e["message"] for e in events] == ["one", "two"]
    assert [e["message"] for e in _events(f"{base}?after={events[0]['seq']}")] == ["two"]
    assert _events(f"{base}?after={2**63 - 1}&follow=1") == []


def _events(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(signed(url), timeout=30) as r:
        return [json.loads(line) for line in r if line.strip()]


# -- the CLI signs, and the keys it may sign with ------------------------------------------
def _cli(server: Server, *args: str, keys: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ECSLOCAL_DATA_DIR": str(server.data_dir)}
    env.pop("ECSLOCAL_ACCESS_KEYS", None)
    if keys is not None:
        env["ECSLOCAL_ACCESS_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "-m", "ecslocal", "--port", str(server.port), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_no_default_key_refuses_test_test_and_the_cli_signs_with_its_key(
    fresh_server: Server, tmp_path: Path
) -> None:
    # A first run with test/test, then --no-default-key on the same data dir: test/test must
    # not survive in the stored keys.
    first = fresh_server.start()
    assert first.client("sts").get_caller_identity()["Account"] == "000000000000"
    first.stop()
    fresh_server.extra = ("--no-default-key", "--access-key", f"{KEY[0]}:{KEY[1]}")
    server = fresh_server.start()

    with pytest.raises(ClientError) as info:
        server.client("ecs").list_clusters()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    status, _, body = _call(signed(server.url + "/_ecslocal/v1/faults"))
    assert status == 401 and body["message"].startswith("The security token included")
    assert server.client("ecs", key=KEY).list_clusters()["ResponseMetadata"]["HTTPStatusCode"]
    assert _call(signed(server.url + "/_ecslocal/v1/faults", key=KEY))[0] == 200

    # The CLI signs its AWS and local API calls with the first of $ECSLOCAL_ACCESS_KEYS.
    keys = f"{KEY[0]}:{KEY[1]}"
    added = _cli(server, "fault", "add", "sts", "slow", "--delay-ms", "5", keys=keys)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() in _cli(server, "fault", "ls", keys=keys).stdout
    token = _cli(server, "oidc-token", "--sub", "me", keys=keys)
    assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
    taskdef_path = tmp_path / "td.json"
    taskdef_path.write_text(json.dumps(taskdef("local-cli", container("app", "echo hi-cli"))))
    ran = _cli(server, "run", str(taskdef_path), keys=keys)
    assert ran.returncode == 0 and "hi-cli" in ran.stdout, ran.stderr
    assert "local-cli" in _cli(server, "ps", "-a", keys=keys).stdout

    # Signed with test/test, the CLI is refused with the API's message, not a traceback.
    refused = _cli(server, "fault", "ls")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "the ecslocal API answered 401: The security token included" in refused.stderr
    refused = _cli(server, "ps")
    assert refused.returncode == 1 and "UnrecognizedClientException" in refused.stderr


def test_no_default_key_needs_another_key(tmp_path: Path) -> None:
    env = {**os.environ, "ECSLOCAL_DATA_DIR": str(tmp_path / "data")}
    env.pop("ECSLOCAL_ACCESS_KEYS", None)
    out = subprocess.run(
        [sys.executable, "-m", "ecslocal", "serve", "--port", "0", "--no-default-key"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 1
    assert "--no-default-key needs a key to accept: --access-key ID:SECRET" in out.stderr


WARNING = "WARNING: ecslocal is listening on 0.0.0.0:"


def test_a_non_loopback_host_warns_that_test_test_is_accepted(fresh_server: Server) -> None:
    fresh_server.extra = ("--host", "0.0.0.0")
    server = fresh_server.start()
    said = "".join(server.output)
    assert WARNING + str(server.port) in said
    assert "accepts the well-known access key test/test" in said
    assert "--no-default-key" in said
    assert server.client("sts").get_caller_identity()["Account"] == "000000000000"


def test_no_warning_on_loopback_or_without_the_default_key(tmp_path: Path) -> None:
    quiet = [
        Server(tmp_path / "a"),
        Server(
            tmp_path / "b",
            "--host",
            "0.0.0.0",
            "--no-default-key",
            "--access-key",
            f"{KEY[0]}:{KEY[1]}",
        ),
    ]
    try:
        for server in quiet:
            server.start()
            # the warning, if any, is printed before the ready line start() waits for
            assert "WARNING" not in "".join(server.output), server.output
    finally:
        for server in quiet:
            server.stop()
