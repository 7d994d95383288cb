"""EC2 instance metadata (IMDSv2) for EC2-launch tasks: tokens required, the instance role's
credentials through the SDK's last fallback."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from tests.conftest import ECS_TASKS_TRUST, Server, run_task, task_logs, taskdef, wait_stopped

EC2_TRUST = ECS_TASKS_TRUST.replace("ecs-tasks.amazonaws.com", "ec2.amazonaws.com")

SDK = """
import boto3, os
print("endpoint=" + os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"], flush=True)
print("arn=" + boto3.client("sts").get_caller_identity()["Arn"], flush=True)
"""


def _call(server: Server, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(server.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_imdsv2_tokens_and_instance_role(fresh_server: Server) -> None:
    fresh_server.extra = (
        "--instance-role", "arn:aws:iam::000000000000:role/instance-role",
    )
    server = fresh_server.start()
    server.client("iam").create_role(RoleName="instance-role", AssumeRolePolicyDocument=EC2_TRUST)

    assert _call(server, "/latest/meta-data/instance-id")[0] == 401  # IMDSv1 refused
    assert _call(server, "/latest/api/token", "PUT")[0] == 400  # no TTL
    assert _call(server, "/latest/api/token", "PUT",
                 {"X-aws-ec2-metadata-token-ttl-seconds": "21601"})[0] == 400
    status, token = _call(server, "/latest/api/token", "PUT",
                          {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert status == 200 and token
    auth = {"X-aws-ec2-metadata-token": token}
    status, instance_id = _call(server, "/latest/meta-data/instance-id", headers=auth)
    assert status == 200 and instance_id.startswith("i-") and len(instance_id) == 19
    assert _call(server, "/latest/meta-data/placement/region", headers=auth) == (200, "us-east-1")
    assert _call(server, "/latest/meta-data/iam/security-credentials/", headers=auth) == (
        200, "instance-role"
    )
    status, body = _call(
        server, "/latest/meta-data/iam/security-credentials/instance-role", headers=auth
    )
    creds = json.loads(body)
    assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["AccessKeyId"].startswith("ASIA") and creds["Expiration"].endswith("Z")

    # an EC2-launch task without a task role: the SDK's chain ends at IMDS, the instance role
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("imds-sdk", {
        "name": "app", "image": "python", "memory": 256,
        "command": [sys.executable, "-c", SDK]}), launchType="EC2")
    wait_stopped(ecs, arn, timeout=60)
    lines = [e["message"] for e in task_logs(server, arn)]
    assert f"endpoint={server.url}" in lines, lines
    assert f"arn=arn:aws:sts::000000000000:assumed-role/instance-role/{instance_id}" in lines

    # IMDS unavailable on demand
    out = server.cli("fault", "add", "imds", "http-500", "--duration", "30")
    assert out.returncode == 0, out.stderr
    assert _call(server, "/latest/meta-data/instance-id", headers=auth)[0] == 500


def test_no_instance_role_means_no_credentials(server: Server) -> None:
    _, token = _call(server, "/latest/api/token", "PUT",
                     {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    auth = {"X-aws-ec2-metadata-token": token}
    assert _call(server, "/latest/meta-data/iam/security-credentials/", headers=auth)[0] == 404
