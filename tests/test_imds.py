"""EC2 instance metadata (IMDSv2) for EC2-launch tasks: tokens required, the instance role's
credentials through the SDK's last fallback."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from botocore.utils import InstanceMetadataFetcher

from tests.conftest import (
    ECS_TASKS_TRUST,
    Server,
    container,
    run_task,
    signed,
    task_logs,
    taskdef,
    wait_stopped,
)

EC2_TRUST = ECS_TASKS_TRUST.replace("ecs-tasks.amazonaws.com", "ec2.amazonaws.com")

SDK = """
import boto3, os
print("endpoint=" + os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"], flush=True)
print("arn=" + boto3.client("sts").get_caller_identity()["Arn"], flush=True)
"""


def _call(
    server: Server, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(server.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_imdsv2_tokens_and_instance_role(fresh_server: Server) -> None:
    fresh_server.extra = (
        "--instance-role",
        "arn:aws:iam::000000000000:role/instance-role",
    )
    server = fresh_server.start()
    server.client("iam").create_role(RoleName="instance-role", AssumeRolePolicyDocument=EC2_TRUST)

    assert _call(server, "/latest/meta-data/instance-id")[0] == 401  # IMDSv1 refused
    assert _call(server, "/latest/api/token", "PUT")[0] == 400  # no TTL
    assert (
        _call(
            server, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "21601"}
        )[0]
        == 400
    )
    status, token = _call(
        server, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    assert status == 200 and token
    auth = {"X-aws-ec2-metadata-token": token}
    assert "iam/" in _call(server, "/latest/meta-data/", headers=auth)[1].split("\n")
    status, instance_id = _call(server, "/latest/meta-data/instance-id", headers=auth)
    assert status == 200 and instance_id.startswith("i-") and len(instance_id) == 19
    assert _call(server, "/latest/meta-data/placement/region", headers=auth) == (200, "us-east-1")
    assert _call(server, "/latest/meta-data/iam/security-credentials/", headers=auth) == (
        200,
        "instance-role",
    )
    status, body = _call(
        server, "/latest/meta-data/iam/security-credentials/instance-role", headers=auth
    )
    creds = json.loads(body)
    assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["AccessKeyId"].startswith("ASIA") and creds["Expiration"].endswith("Z")

    # an EC2-launch task without a task role: the SDK's chain ends at IMDS, the instance role
    ecs = server.ecs()
    arn = run_task(
        ecs,
        taskdef(
            "imds-sdk",
            {
                "name": "app",
                "image": "python",
                "memory": 256,
                "command": [sys.executable, "-c", SDK],
            },
        ),
        launchType="EC2",
    )
    wait_stopped(ecs, arn, timeout=60)
    lines = [e["message"] for e in task_logs(server, arn)]
    # IMDS has a listener of its own (a refuse fault closes it), on loopback beside the daemon's
    endpoint = next(line.split("=", 1)[1] for line in lines if line.startswith("endpoint="))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint) and endpoint != server.url
    assert f"arn=arn:aws:sts::000000000000:assumed-role/instance-role/{instance_id}" in lines

    # IMDS unavailable on demand
    out = server.cli("fault", "add", "imds", "http-500", "--duration", "30")
    assert out.returncode == 0, out.stderr
    assert _call(server, "/latest/meta-data/instance-id", headers=auth)[0] == 500


def test_no_instance_role_means_no_credentials(server: Server) -> None:
    _, token = _call(
        server, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    auth = {"X-aws-ec2-metadata-token": token}
    assert _call(server, "/latest/meta-data/iam/security-credentials/", headers=auth)[0] == 404
    assert _call(server, "/latest/meta-data/iam/info", headers=auth)[0] == 404
    # no listing entry that answers 404: iam/ is "not present" without an instance profile
    status, listing = _call(server, "/latest/meta-data/", headers=auth)
    assert status == 200 and "instance-id" in listing.split("\n")
    assert "iam/" not in listing.split("\n"), listing


def _token(server: Server, ttl: str = "60") -> str:
    status, token = _call(
        server, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    )
    assert status == 200 and token, (status, token)
    return token


def test_imds_v1_allows_token_less_gets_but_not_bad_tokens(fresh_server: Server) -> None:
    # (that IMDSv1 is refused without --imds-v1 is in test_imdsv2_tokens_and_instance_role)
    fresh_server.extra = ("--imds-v1",)
    server = fresh_server.start()
    status, instance_id = _call(server, "/latest/meta-data/instance-id")
    assert status == 200 and instance_id.startswith("i-") and len(instance_id) == 19
    assert _call(server, "/latest/meta-data/placement/region") == (200, "us-east-1")
    # IMDSv2 goes on working beside it, and answers the same
    auth = {"X-aws-ec2-metadata-token": _token(server)}
    assert _call(server, "/latest/meta-data/instance-id", headers=auth) == (200, instance_id)
    # a token that is sent is checked even when none is needed: AWS answers 401 when "the GET
    # request uses an invalid token"
    bogus = {"X-aws-ec2-metadata-token": "not-a-token"}
    assert _call(server, "/latest/meta-data/instance-id", headers=bogus)[0] == 401


def test_token_ttl_bounds_and_expiry(server: Server) -> None:
    for ttl in ("0", "-1", "abc"):
        assert (
            _call(
                server, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
            )[0]
            == 400
        ), ttl
    request = urllib.request.Request(
        server.url + "/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200 and r.read()
        assert r.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"

    short = {"X-aws-ec2-metadata-token": _token(server, "1")}
    assert _call(server, "/latest/meta-data/placement/region", headers=short)[0] == 200
    time.sleep(1.3)
    assert _call(server, "/latest/meta-data/placement/region", headers=short)[0] == 401
    fresh = {"X-aws-ec2-metadata-token": _token(server, "1")}
    assert _call(server, "/latest/meta-data/placement/region", headers=fresh) == (200, "us-east-1")
    # the expired token stays expired once a later PUT has pruned the table
    assert _call(server, "/latest/meta-data/placement/region", headers=short)[0] == 401


def _timed(
    server: Server, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, float]:
    """Status (0 when the connection is closed without an answer) and seconds taken."""
    began = time.monotonic()
    try:
        status = _call(server, path, method, headers)[0]
    except (http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError):
        status = 0
    return status, time.monotonic() - began


def _fault(server: Server, body: dict[str, object]) -> str:
    request = signed(
        urllib.request.Request(
            server.url + "/_ecslocal/v1/faults", data=json.dumps(body).encode(), method="POST"
        )
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 201
        fault = json.loads(r.read())
    assert fault["target"] == "imds" and fault["task"] is None, fault
    return str(fault["id"])


def _clear_faults(server: Server) -> None:
    request = signed(urllib.request.Request(server.url + "/_ecslocal/v1/faults", method="DELETE"))
    urllib.request.urlopen(request, timeout=10).close()


def test_imds_refuse_and_slow_faults(server: Server) -> None:
    auth = {"X-aws-ec2-metadata-token": _token(server)}
    put = ("/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    get = ("/latest/meta-data/instance-id", "GET", auth)
    try:
        assert _timed(server, *get)[0] == 200
        _fault(server, {"target": "imds", "kind": "refuse", "durationSeconds": 30})
        assert _timed(server, *get)[0] == 0  # closed without an answer
        assert _timed(server, *put)[0] == 0  # the token endpoint too
        _clear_faults(server)
        assert _timed(server, *get)[0] == 200

        _fault(server, {"target": "imds", "kind": "slow", "delayMs": 500, "durationSeconds": 30})
        status, seconds = _timed(server, *get)
        assert status == 200 and seconds >= 0.5, (status, seconds)
        status, seconds = _timed(server, *put)
        assert status == 200 and seconds >= 0.5, (status, seconds)
        _clear_faults(server)
        status, seconds = _timed(server, *get)
        assert status == 200 and seconds < 0.5, (status, seconds)
    finally:
        _clear_faults(server)


def _connects(address: tuple[str, int]) -> bool:
    """True if a TCP connection to ``address`` is accepted, False if it is refused."""
    try:
        socket.create_connection(address, timeout=10).close()
    except ConnectionRefusedError:
        return False
    return True


def test_imds_refuse_is_a_tcp_refusal_at_the_containers_endpoint(
    fresh_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """What EC2-launch containers are given in AWS_EC2_METADATA_SERVICE_ENDPOINT is a listener
    of IMDS's own: a refuse fault stops it listening, so a connect gets ECONNREFUSED (what
    an instance whose metadata service is down gives) rather than a connection that is
    accepted and dropped; botocore's IMDS fetcher says it could not connect."""
    server = fresh_server.start()
    ecs = server.ecs()
    command = "echo imds=$AWS_EC2_METADATA_SERVICE_ENDPOINT; exec sleep 120"
    arn = run_task(ecs, taskdef("imds-refuse", container("app", command)), launchType="EC2")
    try:
        deadline = time.monotonic() + 30  # bounds a hang; a busy machine may take a while
        while not (lines := [e["message"] for e in task_logs(server, arn)]):
            assert time.monotonic() < deadline, "the container did not print its endpoint"
            time.sleep(0.05)
        url = lines[0].split("=", 1)[1]
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, url
        address = (parts.hostname, parts.port)
        # serve names this listener before its ready line (so host tools can find it).
        assert f"IMDS for EC2-launch tasks on {url} " in "".join(server.output)
        # It is IMDS: a token comes from it.
        put = urllib.request.Request(
            url + "/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(put, timeout=10) as r:
            assert r.status == 200 and r.read()

        _fault(server, {"target": "imds", "kind": "refuse", "durationSeconds": 300})
        assert not _connects(address)
        fetcher = InstanceMetadataFetcher(timeout=5, num_attempts=1, base_url=url)
        with caplog.at_level(logging.DEBUG, logger="botocore.utils"):
            assert fetcher.retrieve_iam_role_credentials() == {}
        said = " ".join(r.getMessage() for r in caplog.records if r.name == "botocore.utils")
        assert "Could not connect to the endpoint URL" in said, said
        _clear_faults(server)
        assert _connects(address)
        with urllib.request.urlopen(put, timeout=10) as r:
            assert r.status == 200
    finally:
        _clear_faults(server)
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)
