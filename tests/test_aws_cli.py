"""The `aws` CLI (awscli from PyPI, a test dependency) drives ecslocal unchanged with
--endpoint-url: register-task-definition -> run-task -> wait tasks-stopped -> logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import Server, container, taskdef


def aws(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
    }
    env.pop("AWS_SESSION_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def aws_json(server: Server, *args: str) -> Any:
    out = aws(server, *args).stdout
    return json.loads(out) if out.strip() else None


def test_register_run_wait_and_read_logs(server: Server, tmp_path: Path) -> None:
    group = f"/ecslocal/cli-{uuid.uuid4().hex[:8]}"
    log_config = {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": group,
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "cli",
            "awslogs-create-group": "true",
        },
    }
    definition = taskdef(
        "aws-cli-hello",
        container(
            "app", "echo hello from the cli; echo second line; exit 3", logConfiguration=log_config
        ),
    )
    path = tmp_path / "taskdef.json"
    path.write_text(json.dumps(definition))

    registered = aws_json(
        server, "ecs", "register-task-definition", "--cli-input-json", f"file://{path}"
    )["taskDefinition"]
    assert registered["family"] == "aws-cli-hello" and registered["status"] == "ACTIVE"

    run = aws_json(server, "ecs", "run-task", "--task-definition", registered["taskDefinitionArn"])
    assert run["failures"] == []
    task_arn = run["tasks"][0]["taskArn"]
    task_id = task_arn.rsplit("/", 1)[-1]

    aws(server, "ecs", "wait", "tasks-stopped", "--tasks", task_arn)
    task = aws_json(server, "ecs", "describe-tasks", "--tasks", task_arn)["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["containers"][0]["exitCode"] == 3

    stream = f"cli/app/{task_id}"
    streams = aws_json(server, "logs", "describe-log-streams", "--log-group-name", group)
    assert [s["logStreamName"] for s in streams["logStreams"]] == [stream]
    events = aws_json(
        server,
        "logs",
        "get-log-events",
        "--log-group-name",
        group,
        "--log-stream-name",
        stream,
        "--start-from-head",
    )["events"]
    assert [e["message"] for e in events] == ["hello from the cli", "second line"]


def test_cli_errors_are_aws_errors(server: Server) -> None:
    result = aws(
        server, "ecs", "describe-task-definition", "--task-definition", "nope:1", check=False
    )
    assert result.returncode == 255  # awscli v1: 255 on a service error (v2: 254)
    assert (
        "An error occurred (ClientException) when calling the DescribeTaskDefinition"
        " operation: Unable to describe task definition." in result.stderr
    )


def test_query_and_json_services_from_the_cli(server: Server) -> None:
    assert aws_json(server, "sts", "get-caller-identity")["Arn"] == (
        "arn:aws:iam::000000000000:root"
    )
    assert "Roles" in aws_json(server, "iam", "list-roles")
    clusters = aws_json(server, "ecs", "list-clusters")["clusterArns"]
    assert "arn:aws:ecs:us-east-1:000000000000:cluster/default" in clusters


def test_cli_with_a_wrong_secret_is_refused(server: Server) -> None:
    env_override = {"AWS_SECRET_ACCESS_KEY": "wrong"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "--endpoint-url",
            server.url,
            "sts",
            "get-caller-identity",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **env_override,
        },
    )
    assert result.returncode == 255  # awscli v1: 255 on a service error (v2: 254)
    assert "(SignatureDoesNotMatch)" in result.stderr
