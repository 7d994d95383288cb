"""Task definition validation: botocore's RegisterTaskDefinitionRequest shape plus ECS's rules.
Invalid input gets an ECS-shaped error and writes nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import Server, container, taskdef


def _code_and_message(ecs: Any, definition: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ecs.register_task_definition(**definition)
    e = err.value.response["Error"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e["Code"], e["Message"]


def _hc(**fields: Any) -> dict[str, Any]:
    return {"command": ["CMD-SHELL", "true"], **fields}


INVALID = {
    "duplicate-names": (
        taskdef("v", container("a", "true"), container("a", "true")),
        "Duplicate container name",
    ),
    "no-essential": (
        taskdef("v", container("a", "true", essential=False)),
        "Task definition doesn't have any essential container.",
    ),
    "missing-image": (
        taskdef("v", {"name": "a", "memory": 64}),
        "Container.image should not be null or empty.",
    ),
    "depends-on-unknown": (
        taskdef(
            "v",
            container("a", "true", dependsOn=[{"containerName": "ghost", "condition": "START"}]),
        ),
        "'ghost' does not exist",
    ),
    "depends-on-cycle": (
        taskdef(
            "v",
            container("a", "true", dependsOn=[{"containerName": "b", "condition": "START"}]),
            container("b", "true", dependsOn=[{"containerName": "a", "condition": "START"}]),
        ),
        "cycle",
    ),
    "success-on-essential": (
        taskdef(
            "v",
            container("a", "true"),
            container("b", "true", dependsOn=[{"containerName": "a", "condition": "SUCCESS"}]),
        ),
        "A dependency container with SUCCESS or COMPLETE condition cannot be an essential"
        " container",
    ),
    "interval-too-small": (
        taskdef("v", container("a", "true", healthCheck=_hc(interval=4))),
        "between 5 and 300",
    ),
    "timeout-too-big": (
        taskdef("v", container("a", "true", healthCheck=_hc(timeout=61))),
        "between 2 and 60",
    ),
    "retries-too-big": (
        taskdef("v", container("a", "true", healthCheck=_hc(retries=11))),
        "between 1 and 10",
    ),
    "start-period-too-big": (
        taskdef("v", container("a", "true", healthCheck=_hc(startPeriod=301))),
        "between 0 and 300",
    ),
    "stop-timeout-too-big": (
        taskdef("v", container("a", "true", stopTimeout=121)),
        "between 0 and 120",
    ),
    "awslogs-without-group": (
        taskdef(
            "v",
            container(
                "a",
                "true",
                logConfiguration={
                    "logDriver": "awslogs",
                    "options": {"awslogs-region": "us-east-1"},
                },
            ),
        ),
        "Log driver awslogs requires options: awslogs-group",
    ),
    "bad-family": (taskdef("bad family!", container("a", "true")), "Family contains invalid"),
    "fargate-bad-size": (
        taskdef(
            "v",
            container("a", "true"),
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="4096",
        ),
        "No Fargate configuration exists",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_task_definition_is_refused(fresh_server: Server, case: str) -> None:
    server = fresh_server.start()
    ecs = server.ecs(client_validation=False)  # the daemon must catch it, not botocore
    definition, fragment = INVALID[case]
    code, message = _code_and_message(ecs, definition)
    assert code in ("ClientException", "InvalidParameterException")
    assert fragment in message
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


def test_wrong_type_is_a_serialization_error(fresh_server: Server) -> None:
    # AWS JSON services answer a value of the wrong type with SerializationException, before
    # any constraint is looked at.
    server = fresh_server.start()
    ecs = server.ecs(client_validation=False)
    code, message = _code_and_message(ecs, taskdef("v", container("a", "true", memory="lots")))
    assert code == "SerializationException"
    assert "containerDefinitions.1.member.memory" in message
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


def test_defaults_filled_in_like_describe_task_definition(ecs: Any) -> None:
    td = ecs.register_task_definition(
        **taskdef("v-defaults", container("a", "true", healthCheck=_hc()))
    )["taskDefinition"]
    c = td["containerDefinitions"][0]
    assert c["essential"] is True
    assert c["healthCheck"] == {
        "command": ["CMD-SHELL", "true"],
        "interval": 30,
        "timeout": 5,
        "retries": 3,
    }
    assert td["status"] == "ACTIVE" and td["revision"] >= 1
    again = ecs.describe_task_definition(taskDefinition="v-defaults")["taskDefinition"]
    assert again["taskDefinitionArn"] == td["taskDefinitionArn"]


def test_describe_output_is_accepted_as_input(ecs: Any, server: Server, tmp_path: Path) -> None:
    ecs.register_task_definition(**taskdef("v-roundtrip", container("a", "echo roundtrip")))
    described = ecs.describe_task_definition(taskDefinition="v-roundtrip", include=["TAGS"])
    path = tmp_path / "described.json"
    path.write_text(json.dumps(described, default=str))
    result = server.cli("run", str(path))
    assert result.returncode == 0, result.stderr
    assert "roundtrip" in result.stdout


def test_cli_refuses_invalid_file_and_writes_nothing(fresh_server: Server, tmp_path: Path) -> None:
    server = fresh_server.start()
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(taskdef("v-cli", container("a", "true", essential=False))))
    result = server.cli("run", str(path))
    assert result.returncode != 0
    assert "ClientException" in result.stderr
    assert "doesn't have any essential container" in result.stderr
    assert server.ecs().list_task_definitions()["taskDefinitionArns"] == []


def test_cli_refuses_unknown_fields_like_the_aws_cli(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(taskdef("v-typo", container("a", "true", healtCheck={}))))
    result = server.cli("run", str(path))
    assert result.returncode == 252
    assert 'Unknown parameter in containerDefinitions[0]: "healtCheck"' in result.stderr


FARGATE = {
    "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
}


def test_fargate_refuses_pid_mode_host(server: Server) -> None:
    """Fargate supports pidMode "task" only ("pidMode: ... If task is specified ... Fargate"
    - TaskDefinition API reference); ECS's ClientException words, as CloudFormation relayed
    them in aws/aws-cdk#29619. EC2 task definitions may share the host's PID namespace."""
    ecs = server.ecs(client_validation=False)
    family = "v-pid-fargate"
    assert _code_and_message(
        ecs, taskdef(family, container("a", "true"), pidMode="host", **FARGATE)
    ) == (
        "ClientException",
        "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value"
        " for pidMode is 'task'.",
    )
    assert ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"] == []
    task_mode = ecs.register_task_definition(
        **taskdef(family, container("a", "true"), pidMode="task", **FARGATE)
    )["taskDefinition"]
    assert task_mode["pidMode"] == "task" and "FARGATE" in task_mode["compatibilities"]
    ec2 = ecs.register_task_definition(
        **taskdef("v-pid-ec2", container("a", "true"), pidMode="host")
    )["taskDefinition"]
    assert ec2["pidMode"] == "host"


def test_at_most_ten_containers_per_task_definition(server: Server) -> None:
    """ECS service quotas: "Container definitions per task definition: 10". ECS answers an
    eleventh with ClientException "Too many containers." (aws/amazon-ecs-cli#184, #951)."""
    ecs = server.ecs(client_validation=False)
    eleven = [container(f"c{i}", "true") for i in range(11)]
    assert _code_and_message(ecs, taskdef("v-eleven", *eleven)) == (
        "ClientException",
        "Too many containers.",
    )
    assert ecs.list_task_definitions(familyPrefix="v-eleven")["taskDefinitionArns"] == []
    ten = ecs.register_task_definition(**taskdef("v-ten", *eleven[:10]))["taskDefinition"]
    assert len(ten["containerDefinitions"]) == 10


def _padded(family: str, size: int) -> dict[str, Any]:
    """A task definition whose compact JSON is ``size`` bytes."""
    definition = taskdef(family, container("a", "true", environment=[{"name": "PAD", "value": ""}]))
    base = len(json.dumps(definition, separators=(",", ":")).encode())
    definition["containerDefinitions"][0]["environment"][0]["value"] = "x" * (size - base)
    return definition


def test_task_definition_size_limit(server: Server) -> None:
    """ECS service quotas: "Task definition size: 64 KiB". ECS's ClientException names both
    sizes: "Actual length: '66420'. Max allowed length is '65536' bytes." (CloudTrail record in
    awsdocs/amazon-ecs-developer-guide#149). What ECS counts is not documented; ecslocal counts
    the request's compact JSON, so a definition of exactly 65536 such bytes registers."""
    ecs = server.ecs(client_validation=False)
    assert _code_and_message(ecs, _padded("v-huge", 65537)) == (
        "ClientException",
        "Actual length: '65537'. Max allowed length is '65536' bytes.",
    )
    assert ecs.list_task_definitions(familyPrefix="v-huge")["taskDefinitionArns"] == []
    registered = ecs.register_task_definition(**_padded("v-huge", 65536))["taskDefinition"]
    assert registered["revision"] >= 1


def test_health_check_command_without_cmd_prefix_is_registered(server: Server) -> None:
    """ECS registers a healthCheck.command whatever its first element: the ADOT collector's
    published Fargate task definitions use ["/healthcheck"] (aws-observability/
    aws-otel-collector#2034). It is stored as given, with the HealthCheck defaults."""
    ecs = server.ecs()
    td = ecs.register_task_definition(
        **taskdef(
            "v-adot", container("a", "true", healthCheck={"command": ["/healthcheck"]}), **FARGATE
        )
    )["taskDefinition"]
    assert td["containerDefinitions"][0]["healthCheck"] == {
        "command": ["/healthcheck"],
        "interval": 30,
        "timeout": 5,
        "retries": 3,
    }


# -- JSON null in a request ---------------------------------------------------------------------
# boto3 never sends a null, so these requests are raw JSON bodies, SigV4-signed by botocore.
def _raw(server: Server, target: str, body: bytes, service: str = "ecs") -> tuple[int, dict]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    prefix = {"ecs": "AmazonEC2ContainerServiceV20141113", "logs": "Logs_20140328"}[service]
    headers = {"X-Amz-Target": f"{prefix}.{target}", "Content-Type": "application/x-amz-json-1.1"}
    aws = AWSRequest(method="POST", url=f"{server.url}/", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), service, "us-east-1").add_auth(aws)
    request = urllib.request.Request(
        f"{server.url}/", data=body, headers=dict(aws.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_null_structure_member_is_an_absent_one(server: Server) -> None:
    # Smithy awsJson1_1 protocol test AwsJson11ServersDontDeserializeNullStructureValues
    # (smithy-aws-protocol-tests/model/awsJson1_1/null.smithy): {"string": null} reads as {}.
    # Here the null name and image reach ECS's own rule, as if they had been left out.
    status, body = _raw(
        server,
        "RegisterTaskDefinition",
        b'{"family":"nulls","containerDefinitions":[{"name":null,"image":null}]}',
    )
    assert status == 400
    assert body["__type"] == "ClientException"
    assert body["message"] == "Container.name should not be null or empty."
    assert "NoneType" not in body["message"] and "None" not in body["message"]
    assert "class" not in body["message"]
    status, body = _raw(
        server,
        "RegisterTaskDefinition",
        b'{"family":"nulls","taskRoleArn":null,"memory":"512","containerDefinitions":[{"name":"a",'
        b'"image":"busybox","command":["true"],"memory":null,"essential":null,'
        b'"healthCheck":null,"dockerLabels":null}]}',
    )
    assert status == 200, body
    got = body["taskDefinition"]
    assert "taskRoleArn" not in got
    assert "memory" not in got["containerDefinitions"][0]
    assert got["containerDefinitions"][0]["essential"] is True  # the default, as when absent


@pytest.mark.parametrize(
    ("member", "path"),
    [
        ('"dockerLabels":{"a":null}', "containerDefinitions.1.member.dockerLabels.value"),
        ('"command":["true",null]', "containerDefinitions.1.member.command.2.member"),
    ],
)
def test_a_null_in_a_dense_list_or_map_is_refused(server: Server, member: str, path: str) -> None:
    # Lists and maps are dense unless @sparse (https://smithy.io/2.0/spec/
    # type-refinement-traits.html#sparse-trait); Smithy servers reject a null in a dense
    # collection (aws/aws-sdk-js-v3#2771). No ECS collection is sparse.
    body = (
        '{"family":"nulls","containerDefinitions":[{"name":"a","image":"busybox",' + member + "}]}"
    ).encode()
    status, error = _raw(server, "RegisterTaskDefinition", body)
    assert status == 400
    assert error["__type"] == "InvalidParameterException"
    assert error["message"] == (
        f"1 validation error detected: Value null at '{path}' failed to satisfy constraint:"
        " Member must not be null"
    )


def test_a_null_member_is_absent_in_every_json_service(server: Server) -> None:
    # CloudWatch Logs: a null nextToken / limit is no token / the default limit.
    status, body = _raw(
        server, "DescribeLogGroups", b'{"logGroupNamePrefix":null,"limit":null}', "logs"
    )
    assert status == 200, body
    assert "logGroups" in body
