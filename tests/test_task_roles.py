"""RunTask checks a task's roles as ECS does: the taskRoleArn / executionRoleArn must name an
existing IAM role whose trust policy admits ecs-tasks.amazonaws.com, else RunTask fails with
"ECS was unable to assume the role ..."."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, container, ecs_task_role, taskdef, wait_stopped

ACCOUNT = "000000000000"


def _unable(role_arn: str) -> str:
    return (
        f"ECS was unable to assume the role '{role_arn}' that was provided for this task. Please"
        " verify that the role being passed has the proper trust relationship and permissions"
        " and that your IAM user has permissions to pass this role."
    )


def _register(ecs: Any, **fields: Any) -> str:
    family = f"roles-{uuid.uuid4().hex[:8]}"
    td = ecs.register_task_definition(**taskdef(family, container("app", "true"), **fields))
    return str(td["taskDefinition"]["taskDefinitionArn"])


def test_task_role_that_trusts_ecs_tasks_runs(server: Server) -> None:
    ecs = server.ecs()
    role = ecs_task_role(server, "roles-ok")
    task = ecs.run_task(taskDefinition=_register(ecs, taskRoleArn=role))["tasks"][0]
    assert wait_stopped(ecs, task["taskArn"])["stopCode"] == "EssentialContainerExited"


@pytest.mark.parametrize(
    "how", ["missing", "trusts-ec2", "trusts-account", "other-account", "wrong-source-account"]
)
def test_task_role_ecs_cannot_assume_fails_run_task(server: Server, how: str) -> None:
    ecs = server.ecs()
    if how == "missing":
        role = f"arn:aws:iam::{ACCOUNT}:role/roles-does-not-exist"
    elif how == "other-account":
        role = "arn:aws:iam::111122223333:role/roles-ok"
    else:
        principal: dict[str, Any] = {
            "trusts-ec2": {"Service": "ec2.amazonaws.com"},
            "trusts-account": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "wrong-source-account": {"Service": "ecs-tasks.amazonaws.com"},
        }[how]
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": principal,
            "Action": "sts:AssumeRole",
        }
        if how == "wrong-source-account":
            statement["Condition"] = {"StringEquals": {"aws:SourceAccount": "111122223333"}}
        trust = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        role = ecs_task_role(server, f"roles-{how}", trust)
    definition = _register(ecs, taskRoleArn=role)
    before = set(ecs.list_tasks(desiredStatus="RUNNING")["taskArns"])
    with pytest.raises(ClientError) as info:
        ecs.run_task(taskDefinition=definition)
    error = info.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("InvalidParameterException", _unable(role))
    assert set(ecs.list_tasks(desiredStatus="RUNNING")["taskArns"]) <= before


def test_confused_deputy_conditions_of_the_aws_docs_are_honoured(server: Server) -> None:
    # The trust policy the ECS developer guide recommends for task roles.
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:*"},
                        "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    },
                }
            ],
        }
    )
    ecs = server.ecs()
    role = ecs_task_role(server, "roles-deputy", trust)
    task = ecs.run_task(taskDefinition=_register(ecs, executionRoleArn=role))["tasks"][0]
    assert wait_stopped(ecs, task["taskArn"])["lastStatus"] == "STOPPED"


def test_override_role_is_checked_too(server: Server) -> None:
    ecs = server.ecs()
    definition = _register(ecs)
    bad = f"arn:aws:iam::{ACCOUNT}:role/roles-nope"
    with pytest.raises(ClientError) as info:
        ecs.run_task(taskDefinition=definition, overrides={"taskRoleArn": bad})
    assert info.value.response["Error"]["Message"] == _unable(bad)
