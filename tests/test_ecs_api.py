"""The ECS control plane through boto3 against a real `ecslocal serve`: task definition families
and deletion, tags, RunTask parameters and overrides, StopTask, ListTasks, DescribeTasks,
botocore's paginators and waiters. Every test uses its own names (the server is shared)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import Server, by_name, container, ecs_task_role, task_logs, taskdef

ACCOUNT_PREFIX = "arn:aws:ecs:us-east-1:000000000000"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error(call: Callable[..., Any], **params: Any) -> tuple[str, str]:
    """(code, message) of the ClientError ``call(**params)`` raises; it must be a 400."""
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**params)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return response["Error"]["Code"], response["Error"]["Message"]


def wait(
    ecs: Any,
    cluster: str,
    arn: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    """Poll DescribeTasks in ``cluster`` until ``predicate(task)``; return the task."""
    deadline = time.monotonic() + timeout
    while True:
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if predicate(task):
            return task
        assert time.monotonic() < deadline, f"timed out; task is now {task}"
        time.sleep(0.1)


def stopped(ecs: Any, cluster: str, arn: str) -> dict[str, Any]:
    return wait(ecs, cluster, arn, lambda t: t["lastStatus"] == "STOPPED")


def sleeper(name: str = "main") -> dict[str, Any]:
    return container(name, "sleep 30", stopTimeout=2)


def register(ecs: Any, family: str, *containers: dict[str, Any], **fields: Any) -> str:
    definition = taskdef(family, *(containers or (sleeper(),)), **fields)
    return str(ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"])


@pytest.fixture
def raw(server: Server) -> Any:
    """An ECS client without botocore's own validation: the server's validation answers."""
    return server.client("ecs", client_validation=False)


@pytest.fixture
def cluster(ecs: Any) -> Iterator[str]:
    """A cluster of this test's own; its tasks are stopped afterwards."""
    name = uid("api")
    ecs.create_cluster(clusterName=name)
    yield name
    arns = ecs.list_tasks(cluster=name)["taskArns"]
    for arn in arns:
        ecs.stop_task(cluster=name, task=arn)
    for arn in arns:
        stopped(ecs, name, arn)


# -- ListTaskDefinitionFamilies ---------------------------------------------------------------
def test_list_task_definition_families_by_status(ecs: Any) -> None:
    prefix = uid("ltdf")
    active, inactive, mixed = f"{prefix}-active", f"{prefix}-inactive", f"{prefix}-mixed"
    register(ecs, active)
    ecs.deregister_task_definition(taskDefinition=register(ecs, inactive))
    ecs.deregister_task_definition(taskDefinition=register(ecs, mixed))
    register(ecs, mixed)

    def families(**kw: Any) -> list[str]:
        return ecs.list_task_definition_families(familyPrefix=prefix, **kw)["families"]

    # Default: both ACTIVE and INACTIVE families (ListTaskDefinitionFamilies API reference).
    assert families() == [active, inactive, mixed]
    assert families(status="ALL") == [active, inactive, mixed]
    assert families(status="ACTIVE") == [active, mixed]
    # INACTIVE: families "that do not have any ACTIVE task definition revisions".
    assert families(status="INACTIVE") == [inactive]
    assert ecs.list_task_definition_families(familyPrefix=uid("none"))["families"] == []


def test_list_task_definition_families_pages(ecs: Any) -> None:
    prefix = uid("ltdfp")
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        register(ecs, name)
    page = ecs.list_task_definition_families(familyPrefix=prefix, maxResults=2)
    assert page["families"] == names[:2] and "nextToken" in page
    page2 = ecs.list_task_definition_families(
        familyPrefix=prefix, maxResults=2, nextToken=page["nextToken"]
    )
    assert page2["families"] == names[2:4]
    paginator = ecs.get_paginator("list_task_definition_families")
    pages = list(paginator.paginate(familyPrefix=prefix, PaginationConfig={"PageSize": 2}))
    assert [len(p["families"]) for p in pages] == [2, 2, 1]
    assert [f for p in pages for f in p["families"]] == names


# -- DeleteTaskDefinitions --------------------------------------------------------------------
def test_delete_task_definitions(ecs: Any, raw: Any) -> None:
    family = uid("del")
    first = register(ecs, family)
    second = register(ecs, family)
    ecs.deregister_task_definition(taskDefinition=first)
    missing = f"{uid('nope')}:1"
    out = ecs.delete_task_definitions(taskDefinitions=[first, f"{family}:2", family, missing])
    assert [td["taskDefinitionArn"] for td in out["taskDefinitions"]] == [first]
    deleted = out["taskDefinitions"][0]
    assert deleted["status"] == "DELETE_IN_PROGRESS"
    assert deleted["deregisteredAt"] <= deleted["deleteRequestedAt"]
    assert out["failures"] == [
        {
            "arn": second,
            "reason": "The specified task definition is still in ACTIVE status. Please"
            " deregister the target and try again.",
        },
        {
            "arn": family,
            "reason": "The specified task definition identifier is invalid. Specify a valid"
            " name or ARN and try again.",
        },
        {
            "arn": f"{ACCOUNT_PREFIX}:task-definition/{missing}",
            "reason": "The specified task definition does not exist. Specify a valid account,"
            " family, revision and try again.",
        },
    ]
    # Gone: like a task definition that never existed.
    assert error(ecs.describe_task_definition, taskDefinition=first) == (
        "ClientException",
        "Unable to describe task definition.",
    )
    for status in ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"):
        listed = ecs.list_task_definitions(familyPrefix=family, status=status)
        assert first not in listed["taskDefinitionArns"]
    assert error(ecs.run_task, taskDefinition=first) == (
        "InvalidParameterException",
        "TaskDefinition not found.",
    )
    assert error(ecs.list_tags_for_resource, resourceArn=first)[0] == "ResourceNotFoundException"
    again = ecs.delete_task_definitions(taskDefinitions=[first])
    assert again["taskDefinitions"] == []
    assert "does not exist" in again["failures"][0]["reason"]
    # The revision number is not reused.
    assert register(ecs, family).endswith(f"{family}:3")


def test_delete_last_inactive_revision_removes_the_family(ecs: Any) -> None:
    family = uid("delfam")
    arn = register(ecs, family)
    ecs.deregister_task_definition(taskDefinition=arn)
    assert ecs.list_task_definition_families(familyPrefix=family)["families"] == [family]
    ecs.delete_task_definitions(taskDefinitions=[arn])
    assert ecs.list_task_definition_families(familyPrefix=family)["families"] == []


def test_delete_task_definitions_count_limits(raw: Any) -> None:
    refs = [f"{uid('lim')}:1" for _ in range(11)]
    assert error(raw.delete_task_definitions, taskDefinitions=refs) == (
        "InvalidParameterException",
        "Size of TaskDefinition references list cannot exceed 10",
    )
    assert error(raw.delete_task_definitions, taskDefinitions=[])[0] == (
        "InvalidParameterException"
    )
    assert error(raw.delete_task_definitions)[0] == "InvalidParameterException"  # required


# -- tags -------------------------------------------------------------------------------------
def test_cluster_tags(ecs: Any) -> None:
    name = uid("tagc")
    arn = ecs.create_cluster(clusterName=name, tags=[{"key": "team", "value": "a"}])["cluster"][
        "clusterArn"
    ]
    plain = ecs.describe_clusters(clusters=[name])["clusters"][0]
    assert "tags" not in plain
    tagged = ecs.describe_clusters(clusters=[arn], include=["TAGS"])["clusters"][0]
    assert tagged["tags"] == [{"key": "team", "value": "a"}]
    ecs.tag_resource(
        resourceArn=arn, tags=[{"key": "team", "value": "b"}, {"key": "env", "value": "x"}]
    )
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "team", "value": "b"},
        {"key": "env", "value": "x"},
    ]
    ecs.untag_resource(resourceArn=arn, tagKeys=["team", "never-set"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "x"}]
    ecs.delete_cluster(cluster=arn)
    assert error(ecs.list_tags_for_resource, resourceArn=arn) == (
        "ClusterNotFoundException",
        "Cluster not found.",
    )


def test_task_definition_tags(ecs: Any) -> None:
    family = uid("tagtd")
    out = ecs.register_task_definition(
        **taskdef(family, sleeper()), tags=[{"key": "k", "value": "v"}]
    )
    arn = out["taskDefinition"]["taskDefinitionArn"]
    assert out["tags"] == [{"key": "k", "value": "v"}]
    assert "tags" not in ecs.describe_task_definition(taskDefinition=arn)
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k2", "value": ""}])
    described = ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
    assert described["tags"] == [{"key": "k", "value": "v"}, {"key": "k2", "value": ""}]
    ecs.untag_resource(resourceArn=arn, tagKeys=["k"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "k2", "value": ""}]
    # Tags stay with the revision when it is deregistered.
    ecs.deregister_task_definition(taskDefinition=arn)
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "k2", "value": ""}]
    without_revision = arn.rsplit(":", 1)[0]
    assert error(ecs.list_tags_for_resource, resourceArn=without_revision) == (
        "InvalidParameterException",
        "The ARN provided is invalid.",
    )


def test_task_tags_only_with_include(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("tagtask"))
    task = ecs.run_task(cluster=cluster, taskDefinition=td, tags=[{"key": "job", "value": "1"}])[
        "tasks"
    ][0]
    arn = task["taskArn"]
    assert task["tags"] == [{"key": "job", "value": "1"}]
    plain = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    assert "tags" not in plain
    with_tags = ecs.describe_tasks(cluster=cluster, tasks=[arn], include=["TAGS"])["tasks"][0]
    assert with_tags["tags"] == [{"key": "job", "value": "1"}]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "owner", "value": "me"}])
    expected = [{"key": "job", "value": "1"}, {"key": "owner", "value": "me"}]
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == expected
    running = wait(ecs, cluster, arn, lambda t: t["lastStatus"] == "RUNNING")
    assert "tags" not in running  # DescribeTasks without include, after the agent saved again
    ecs.untag_resource(resourceArn=arn, tagKeys=["job"])
    described = ecs.describe_tasks(cluster=cluster, tasks=[arn], include=["TAGS"])
    assert described["tasks"][0]["tags"] == [{"key": "owner", "value": "me"}]


def test_propagate_task_definition_tags(ecs: Any, cluster: str) -> None:
    family = uid("prop")
    ecs.register_task_definition(
        **taskdef(family, sleeper()),
        tags=[{"key": "from", "value": "td"}, {"key": "both", "value": "td"}],
    )
    task = ecs.run_task(
        cluster=cluster,
        taskDefinition=family,
        propagateTags="TASK_DEFINITION",
        tags=[{"key": "both", "value": "task"}],
    )["tasks"][0]
    assert task["tags"] == [{"key": "from", "value": "td"}, {"key": "both", "value": "task"}]


def test_tag_errors(ecs: Any, raw: Any) -> None:
    name = uid("tagerr")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    td = register(ecs, uid("tagerrtd"))
    tags = [{"key": "a", "value": "1"}]
    for bad in (
        f"{ACCOUNT_PREFIX}:task-definition/{uid('missing')}:1",
        f"{ACCOUNT_PREFIX}:task/default/0123456789abcdef0123456789abcdef",
        f"{ACCOUNT_PREFIX}:service/default/web",
        td.replace("us-east-1", "eu-west-1"),  # another region's
        td.replace("000000000000", "111111111111"),  # another account's
    ):
        assert error(ecs.tag_resource, resourceArn=bad, tags=tags) == (
            "ResourceNotFoundException",
            "The specified resource could not be found.",
        ), bad
    for bad_cluster in (
        f"{ACCOUNT_PREFIX}:cluster/{uid('missing')}",
        arn.replace("us-east-1", "eu-west-1"),
    ):
        assert error(ecs.tag_resource, resourceArn=bad_cluster, tags=tags) == (
            "ClusterNotFoundException",
            "Cluster not found.",
        )
    for not_ecs in ("arn:aws:ecr:us-east-1:000000000000:repository/x", "just-a-name", ""):
        assert error(raw.list_tags_for_resource, resourceArn=not_ecs) == (
            "InvalidParameterException",
            "The ARN provided is invalid.",
        ), not_ecs
    duplicate = [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]
    assert error(ecs.tag_resource, resourceArn=arn, tags=duplicate) == (
        "InvalidParameterException",
        "Multiple tags contain the same key.",
    )
    assert error(ecs.create_cluster, clusterName=uid("dup"), tags=duplicate)[1] == (
        "Multiple tags contain the same key."
    )
    too_many = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    code, message = error(raw.tag_resource, resourceArn=arn, tags=too_many)
    assert code == "InvalidParameterException"
    assert "Member must have length less than or equal to 50" in message
    ecs.tag_resource(resourceArn=arn, tags=too_many[:50])
    code, _ = error(ecs.tag_resource, resourceArn=arn, tags=[{"key": "one-more", "value": "v"}])
    assert code == "LimitExceededException"
    assert len(ecs.list_tags_for_resource(resourceArn=arn)["tags"]) == 50
    # Overwriting an existing key does not count as a new tag.
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k0", "value": "new"}])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"][0] == {"key": "k0", "value": "new"}


def test_register_with_empty_tag_list_is_refused(raw: Any) -> None:
    definition = taskdef(uid("emptytags"), sleeper())
    assert error(raw.register_task_definition, **definition, tags=[]) == (
        "ClientException",
        "Tags can not be empty.",
    )


# -- RunTask ----------------------------------------------------------------------------------
def test_run_task_count_started_by_group(ecs: Any, raw: Any, cluster: str) -> None:
    family = uid("count")
    td = register(ecs, family)
    out = ecs.run_task(cluster=cluster, taskDefinition=td, count=3, startedBy="job/42_a-b")
    assert out["failures"] == []
    arns = [t["taskArn"] for t in out["tasks"]]
    assert len(set(arns)) == 3
    for task in out["tasks"]:
        assert task["startedBy"] == "job/42_a-b"
        assert task["group"] == f"family:{family}"
        assert task["lastStatus"] == "PROVISIONING" and task["desiredStatus"] == "RUNNING"
        assert task["clusterArn"] == f"{ACCOUNT_PREFIX}:cluster/{cluster}"
    listed = ecs.list_tasks(cluster=cluster, startedBy="job/42_a-b")["taskArns"]
    assert sorted(listed) == sorted(arns)
    grouped = ecs.run_task(cluster=cluster, taskDefinition=td, group="batch:nightly")["tasks"][0]
    assert grouped["group"] == "batch:nightly" and "startedBy" not in grouped
    for count in (0, 11, -1):
        assert error(raw.run_task, cluster=cluster, taskDefinition=td, count=count) == (
            "InvalidParameterException",
            "count must be between 1 and 10.",
        )
    assert error(raw.run_task, cluster=cluster, taskDefinition=td, startedBy="x" * 129) == (
        "InvalidParameterException",
        "startedBy longer than 128.",
    )
    assert len(ecs.list_tasks(cluster=cluster)["taskArns"]) == 4  # nothing else started


def test_run_task_response_has_describe_tasks_shape(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("shape"))
    started = ecs.run_task(cluster=cluster, taskDefinition=td, tags=[{"key": "k", "value": "v"}])
    task = started["tasks"][0]
    described = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]], include=["TAGS"])
    again = described["tasks"][0]
    for field in (
        "taskArn",
        "clusterArn",
        "taskDefinitionArn",
        "overrides",
        "lastStatus",
        "desiredStatus",
        "containers",
        "createdAt",
        "version",
        "launchType",
        "group",
        "availabilityZone",
        "healthStatus",
        "attachments",
        "attributes",
        "tags",
        "enableExecuteCommand",
    ):
        assert field in task and field in again, field
    assert set(task["containers"][0]) <= set(again["containers"][0])
    assert task["attachments"] == [] and task["enableExecuteCommand"] is False


def test_run_task_overrides(ecs: Any, server: Server, cluster: str) -> None:
    family = uid("ovr")
    td = register(
        ecs,
        family,
        container("app", "echo app=$GREETING", environment=[{"name": "GREETING", "value": "td"}]),
        container("side", "sleep 30", essential=False, stopTimeout=2),
    )
    overrides = {
        "containerOverrides": [
            {
                "name": "app",
                "command": ["sh", "-c", "echo app=$GREETING extra=$EXTRA"],
                "environment": [
                    {"name": "GREETING", "value": "override"},
                    {"name": "EXTRA", "value": "é"},
                ],
                "memory": 128,
                "cpu": 64,
            }
        ],
        "cpu": "0.5 vCPU",
        "memory": "1 GB",
        "taskRoleArn": ecs_task_role(server, "ecs-api-task"),
        "executionRoleArn": ecs_task_role(server, "ecs-api-exec"),
    }
    task = ecs.run_task(cluster=cluster, taskDefinition=td, overrides=overrides)["tasks"][0]
    assert task["cpu"] == "512" and task["memory"] == "1024"
    app = by_name(task)["app"]
    assert app["memory"] == "128" and app["cpu"] == "64"
    done = stopped(ecs, cluster, task["taskArn"])
    o = done["overrides"]
    assert o["taskRoleArn"] == "arn:aws:iam::000000000000:role/ecs-api-task"
    assert o["executionRoleArn"] == "arn:aws:iam::000000000000:role/ecs-api-exec"
    assert o["containerOverrides"][0]["command"] == ["sh", "-c", "echo app=$GREETING extra=$EXTRA"]
    assert o["containerOverrides"][0]["name"] == "app"
    assert by_name(done)["app"]["exitCode"] == 0
    lines = [e["message"] for e in task_logs(server, task["taskArn"]) if e["container"] == "app"]
    assert lines == ["app=override extra=é"]


def test_run_task_without_overrides_lists_every_container(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("noovr"), sleeper("a"), sleeper("b"))
    task = ecs.run_task(cluster=cluster, taskDefinition=td)["tasks"][0]
    assert task["overrides"]["containerOverrides"] == [{"name": "a"}, {"name": "b"}]
    assert task["overrides"]["inferenceAcceleratorOverrides"] == []


def test_run_task_override_errors(ecs: Any, raw: Any, cluster: str) -> None:
    td = register(ecs, uid("ovrerr"))

    def run(**kw: Any) -> tuple[str, str]:
        return error(raw.run_task, cluster=cluster, taskDefinition=td, **kw)

    assert run(overrides={"containerOverrides": [{"name": "ghost"}]}) == (
        "InvalidParameterException",
        "Override for container named ghost is not a container in the TaskDefinition.",
    )
    assert run(overrides={"containerOverrides": [{"command": ["true"]}]}) == (
        "InvalidParameterException",
        "Override for container named null is not a container in the TaskDefinition.",
    )
    big = [{"name": "main", "environment": [{"name": "X", "value": "y" * 9000}]}]
    assert run(overrides={"containerOverrides": big}) == (
        "InvalidParameterException",
        "Container Overrides length must be at most 8192",
    )
    assert run(overrides={"memory": "lots"}) == (
        "InvalidParameterException",
        "Invalid 'memory' setting for task: 'lots'.",
    )
    assert run(overrides={"cpu": "inf vcpu"})[0] == "InvalidParameterException"
    assert run(overrides={"containerOverrides": [{"name": "main", "memory": 2}]})[0] == (
        "InvalidParameterException"
    )
    assert run(overrides={"containerOverrides": [{"name": "main", "memory": "x"}]})[0] == (
        "SerializationException"
    )
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == []


def test_run_task_refusals(ecs: Any, raw: Any, cluster: str) -> None:
    family = uid("refuse")
    td = register(ecs, family)
    assert error(ecs.run_task, cluster=cluster, taskDefinition=f"{family}:99") == (
        "InvalidParameterException",
        "TaskDefinition not found.",
    )
    assert error(ecs.run_task, cluster=cluster, taskDefinition=td, launchType="FARGATE") == (
        "ClientException",
        "Task definition does not support launch_type FARGATE.",
    )
    code, message = error(
        ecs.run_task,
        cluster=cluster,
        taskDefinition=td,
        launchType="EC2",
        capacityProviderStrategy=[{"capacityProvider": "FARGATE"}],
    )
    assert (code, message) == (
        "InvalidParameterException",
        "Specifying both a launch type and capacity provider strategy is not supported.",
    )
    assert error(raw.run_task, cluster=cluster, taskDefinition=td, launchType="SPACE")[0] == (
        "InvalidParameterException"
    )
    assert error(ecs.run_task, cluster=uid("nocluster"), taskDefinition=td) == (
        "ClusterNotFoundException",
        "Cluster not found.",
    )
    assert error(ecs.run_task, cluster="bad name!", taskDefinition=td) == (
        "InvalidParameterException",
        r"Cluster must match ^[a-zA-Z0-9\-_]{1,255}$, but was bad name!",
    )
    foreign = f"arn:aws:ecs:eu-west-1:000000000000:cluster/{cluster}"
    assert error(ecs.run_task, cluster=foreign, taskDefinition=td)[0] == (
        "ClusterNotFoundException"
    )
    ecs.deregister_task_definition(taskDefinition=td)
    assert error(ecs.run_task, cluster=cluster, taskDefinition=td) == (
        "InvalidParameterException",
        "TaskDefinition is inactive",
    )
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == []


def test_run_fargate_task_with_cluster_arn(ecs: Any, cluster: str) -> None:
    family = uid("fargate")
    register(
        ecs,
        family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    cluster_arn = f"{ACCOUNT_PREFIX}:cluster/{cluster}"
    task = ecs.run_task(cluster=cluster_arn, taskDefinition=family)["tasks"][0]
    assert task["launchType"] == "FARGATE" and task["platformVersion"] == "1.4.0"
    assert task["clusterArn"] == cluster_arn
    assert ecs.list_tasks(cluster=cluster_arn, launchType="FARGATE")["taskArns"] == [
        task["taskArn"]
    ]
    assert ecs.list_tasks(cluster=cluster_arn, launchType="EC2")["taskArns"] == []
    code, message = error(
        ecs.run_task, cluster=cluster, taskDefinition=family, overrides={"memory": "4096"}
    )
    assert code == "ClientException" and "No Fargate configuration exists" in message


# -- StopTask ---------------------------------------------------------------------------------
def test_stop_task_reason_and_code(ecs: Any, raw: Any, cluster: str) -> None:
    td = register(ecs, uid("stop"))
    arn = ecs.run_task(cluster=cluster, taskDefinition=td)["tasks"][0]["taskArn"]
    wait(ecs, cluster, arn, lambda t: t["lastStatus"] == "RUNNING")
    reason = "r" * 250 + "ÉTÉ-" + "x" * 100
    stopping = ecs.stop_task(cluster=cluster, task=arn, reason=reason)["task"]
    assert stopping["desiredStatus"] == "STOPPED"
    assert stopping["stopCode"] == "UserInitiated"
    assert stopping["stoppedReason"] == reason[:255]
    done = stopped(ecs, cluster, arn)
    # Stopping a stopped task changes nothing.
    again = ecs.stop_task(cluster=cluster, task=arn.rsplit("/", 1)[-1], reason="another")["task"]
    for field in ("stoppedReason", "stopCode", "stoppedAt", "version", "lastStatus"):
        assert again[field] == done[field], field
    assert error(ecs.stop_task, cluster=cluster, task="0123456789abcdef0123456789abcdef") == (
        "InvalidParameterException",
        "The referenced task was not found.",
    )
    # The task exists, but in another cluster.
    assert error(ecs.stop_task, task=arn)[1] == "The referenced task was not found."


def test_stop_task_default_reason(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("stopdef"))
    arn = ecs.run_task(cluster=cluster, taskDefinition=td)["tasks"][0]["taskArn"]
    ecs.stop_task(cluster=cluster, task=arn)
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    assert stopped["stoppedReason"] == "Task stopped by user"
    assert stopped["stopCode"] == "UserInitiated"


# -- ListTasks --------------------------------------------------------------------------------
def test_list_tasks_filters(ecs: Any, raw: Any, cluster: str) -> None:
    a, b = uid("lista"), uid("listb")
    td_a, td_b = register(ecs, a), register(ecs, b)
    arn_a = ecs.run_task(cluster=cluster, taskDefinition=td_a, startedBy="me")["tasks"][0][
        "taskArn"
    ]
    arn_b = ecs.run_task(cluster=cluster, taskDefinition=td_b)["tasks"][0]["taskArn"]

    def listed(**kw: Any) -> list[str]:
        return ecs.list_tasks(cluster=cluster, **kw)["taskArns"]

    assert listed() == [arn_a, arn_b]
    assert listed(desiredStatus="RUNNING") == [arn_a, arn_b]
    assert listed(family=a) == [arn_a]
    assert listed(startedBy="me") == [arn_a]
    assert listed(launchType="EC2") == [arn_a, arn_b]
    assert listed(desiredStatus="PENDING") == []
    assert listed(desiredStatus="STOPPED") == []
    ecs.stop_task(cluster=cluster, task=arn_b)
    assert listed() == [arn_a]
    assert listed(desiredStatus="STOPPED") == [arn_b]
    assert error(ecs.list_tasks, cluster=cluster, serviceName="web") == (
        "ServiceNotFoundException",
        "Service not found.",
    )
    assert error(ecs.list_tasks, cluster=uid("gone")) == (
        "ClusterNotFoundException",
        "Cluster not found.",
    )
    for bad in (0, 101):
        assert error(raw.list_tasks, cluster=cluster, maxResults=bad) == (
            "InvalidParameterException",
            "maxResults must be between 1 and 100.",
        )
    assert error(raw.list_tasks, cluster=cluster, nextToken="not-a-token!")[1] == (
        "Invalid nextToken."
    )
    assert error(raw.list_tasks, cluster=cluster, desiredStatus="DONE")[0] == (
        "InvalidParameterException"
    )


def test_list_tasks_pages_and_paginator(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("pages"))
    arns = [
        t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition=td, count=5)["tasks"]
    ]
    first = ecs.list_tasks(cluster=cluster, maxResults=2)
    assert len(first["taskArns"]) == 2 and "nextToken" in first
    pages = list(
        ecs.get_paginator("list_tasks").paginate(cluster=cluster, PaginationConfig={"PageSize": 2})
    )
    assert [len(p["taskArns"]) for p in pages] == [2, 2, 1]
    assert sorted(a for p in pages for a in p["taskArns"]) == sorted(arns)
    assert "nextToken" not in pages[-1]


# -- DescribeTasks ----------------------------------------------------------------------------
def test_describe_tasks_shape_and_failures(ecs: Any, raw: Any, cluster: str) -> None:
    td = register(ecs, uid("desc"), container("main", "sleep 0.3; exit 3"))
    arn = ecs.run_task(cluster=cluster, taskDefinition=td)["tasks"][0]["taskArn"]
    task = stopped(ecs, cluster, arn)
    for field in (
        "createdAt",
        "pullStartedAt",
        "pullStoppedAt",
        "startedAt",
        "stoppingAt",
        "executionStoppedAt",
        "stoppedAt",
        "connectivityAt",
    ):
        assert field in task, field
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["attachments"] == [] and task["attributes"] == []
    c = task["containers"][0]
    assert c["taskArn"] == arn and c["name"] == "main" and c["image"] == "busybox"
    assert c["lastStatus"] == "STOPPED" and c["exitCode"] == 3
    assert c["healthStatus"] == "UNKNOWN" and c["runtimeId"].startswith(arn.rsplit("/", 1)[-1])
    assert c["networkBindings"] == [] and c["networkInterfaces"] == []
    assert c["containerArn"].startswith(f"{ACCOUNT_PREFIX}:container/{cluster}/")
    missing_id = "0123456789abcdef0123456789abcdef"
    elsewhere = arn.replace(f"task/{cluster}/", "task/default/")
    out = ecs.describe_tasks(cluster=cluster, tasks=[arn, missing_id, elsewhere, arn])
    assert [t["taskArn"] for t in out["tasks"]] == [arn]
    assert out["failures"] == [
        {"arn": f"{ACCOUNT_PREFIX}:task/{cluster}/{missing_id}", "reason": "MISSING"},
        {"arn": elsewhere, "reason": "MISSING"},
    ]
    assert error(raw.describe_tasks, cluster=cluster, tasks=[]) == (
        "InvalidParameterException",
        "Tasks cannot be empty.",
    )
    assert error(raw.describe_tasks, cluster=cluster, tasks=[missing_id] * 101) == (
        "InvalidParameterException",
        "taskIds can have at most 100 items.",
    )
    hundred = ecs.describe_tasks(cluster=cluster, tasks=[missing_id] * 99 + [arn])
    assert len(hundred["tasks"]) == 1 and len(hundred["failures"]) == 99


# -- paginators and waiters -------------------------------------------------------------------
def test_list_paginators(ecs: Any) -> None:
    family = uid("pagtd")
    arns = [register(ecs, family) for _ in range(3)]
    pages = list(
        ecs.get_paginator("list_task_definitions").paginate(
            familyPrefix=family, PaginationConfig={"PageSize": 2}
        )
    )
    assert [p["taskDefinitionArns"] for p in pages] == [arns[:2], arns[2:]]
    desc = ecs.list_task_definitions(familyPrefix=family, sort="DESC")["taskDefinitionArns"]
    assert desc == arns[::-1]
    names = [uid("pagc") for _ in range(3)]
    for name in names:
        ecs.create_cluster(clusterName=name)
    listed = [
        a
        for p in ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 2})
        for a in p["clusterArns"]
    ]
    assert all(f"{ACCOUNT_PREFIX}:cluster/{n}" in listed for n in names)
    assert len(listed) == len(set(listed))


def test_tasks_running_and_stopped_waiters(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("waiter"))
    arns = [
        t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition=td, count=2)["tasks"]
    ]
    fast = {"Delay": 0.2, "MaxAttempts": 100}
    ecs.get_waiter("tasks_running").wait(cluster=cluster, tasks=arns, WaiterConfig=fast)
    assert {t["lastStatus"] for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]} == {
        "RUNNING"
    }
    for arn in arns:
        ecs.stop_task(cluster=cluster, task=arn)
    ecs.get_waiter("tasks_stopped").wait(cluster=cluster, tasks=arns, WaiterConfig=fast)
    # tasks_running fails fast on a STOPPED task or a MISSING one.
    with pytest.raises(botocore.exceptions.WaiterError):
        ecs.get_waiter("tasks_running").wait(cluster=cluster, tasks=arns[:1], WaiterConfig=fast)
    with pytest.raises(botocore.exceptions.WaiterError) as err:
        ecs.get_waiter("tasks_running").wait(
            cluster=cluster, tasks=["0123456789abcdef0123456789abcdef"], WaiterConfig=fast
        )
    assert "MISSING" in str(err.value)


# -- clusters and odd-but-valid input ---------------------------------------------------------
def test_describe_clusters_include_and_failures(ecs: Any, raw: Any) -> None:
    name = uid("dc")
    ecs.create_cluster(clusterName=name, tags=[{"key": "a", "value": "b"}])
    foreign = f"arn:aws:ecs:eu-west-1:000000000000:cluster/{name}"
    out = ecs.describe_clusters(clusters=[name, "no-such-cluster", foreign, "bad name"])
    assert [c["clusterName"] for c in out["clusters"]] == [name]
    assert out["failures"] == [
        {"arn": f"{ACCOUNT_PREFIX}:cluster/no-such-cluster", "reason": "MISSING"},
        {"arn": foreign, "reason": "MISSING"},
        {"arn": f"{ACCOUNT_PREFIX}:cluster/bad name", "reason": "MISSING"},
    ]
    assert "tags" not in out["clusters"][0]
    assert error(raw.create_cluster, clusterName="a/b") == (
        "InvalidParameterException",
        r"Cluster must match ^[a-zA-Z0-9\-_]{1,255}$, but was a/b",
    )


def test_odd_but_valid_inputs_get_shaped_answers(ecs: Any, raw: Any, cluster: str) -> None:
    td = register(ecs, uid("odd"), container("main", "true"))
    # containerOverrides entries need no name in the model; unicode and empty strings.
    assert (
        error(
            raw.run_task, cluster=cluster, taskDefinition=td, overrides={"containerOverrides": [{}]}
        )[0]
        == "InvalidParameterException"
    )
    task = raw.run_task(
        cluster=cluster,
        taskDefinition=td,
        startedBy="ünïcode",
        group="",
        overrides={"containerOverrides": [{"name": "main", "environment": [{"value": "x"}, {}]}]},
    )["tasks"][0]
    assert task["startedBy"] == "ünïcode" and task["group"].startswith("family:")
    stopped(ecs, cluster, task["taskArn"])
    assert raw.describe_tasks(cluster=cluster, tasks=["", "a/b", "arn:aws:ecs:x"])["failures"]
    assert raw.list_tasks(cluster=cluster, family="x" * 5000)["taskArns"] == []
    assert error(raw.describe_task_definition, taskDefinition=f"{uid('odd')}:²")[1] == (
        "Unable to describe task definition."
    )
    assert error(raw.stop_task, cluster=cluster, task="é" * 300)[1] == (
        "The referenced task was not found."
    )


def test_unstartable_environment_stops_the_task(ecs: Any, cluster: str) -> None:
    td = register(ecs, uid("nulenv"), container("main", "true"))
    env = [{"name": "A", "value": "x\x00y"}]
    task = ecs.run_task(
        cluster=cluster,
        taskDefinition=td,
        overrides={"containerOverrides": [{"name": "main", "environment": env}]},
    )["tasks"][0]
    done = wait(ecs, cluster, task["taskArn"], lambda t: t["lastStatus"] == "STOPPED", timeout=5)
    assert done["stopCode"] == "TaskFailedToStart"
