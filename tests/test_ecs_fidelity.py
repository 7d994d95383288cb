"""ECS behaviours moto's ECS suite found missing, each as AWS documents it: no cluster an
account did not create, a cluster's capacity providers and default strategy (applied by
RunTask), Service Connect defaults, DeregisterTaskDefinition's revision rule, and ARNs in the
region's partition. Each test starts a daemon of its own where the account must be fresh."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import Server, container, taskdef, wait_stopped

FARGATE_TD: dict[str, Any] = {
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**params)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return response["Error"]["Code"], response["Error"]["Message"]


def stopped(ecs: Any, cluster: str, arn: str, timeout: float = 30) -> dict[str, Any]:
    """Poll DescribeTasks in ``cluster`` until the task is STOPPED; return it."""
    deadline = time.monotonic() + timeout
    while True:
        task: dict[str, Any] = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED":
            return task
        assert time.monotonic() < deadline, f"timed out; task is now {task}"
        time.sleep(0.1)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A daemon on a data directory of its own, its account as AWS opens one: no cluster."""
    s = Server(tmp_path / "data", default_cluster=False).start()
    yield s
    s.stop()


def test_fresh_account_has_no_default_cluster(fresh: Server) -> None:
    """ECS creates no cluster for an account: ListClusters is empty, and the calls that assume
    the ``default`` cluster when none is named ("If you do not specify a cluster, the default
    cluster is assumed." - RunTask/StopTask/DescribeTasks/ListTasks API reference) answer
    ClusterNotFoundException until it is created."""
    ecs = fresh.ecs()
    assert ecs.list_clusters()["clusterArns"] == []
    td = ecs.register_task_definition(**taskdef(uid("nodefault"), container("m", "true")))
    arn = td["taskDefinition"]["taskDefinitionArn"]
    not_found = ("ClusterNotFoundException", "Cluster not found.")
    assert error(ecs.run_task, taskDefinition=arn) == not_found
    assert error(ecs.list_tasks) == not_found
    assert error(ecs.describe_tasks, tasks=["0123456789abcdef0123456789abcdef"]) == not_found
    assert error(ecs.stop_task, task="0123456789abcdef0123456789abcdef") == not_found
    described = ecs.describe_clusters()
    assert described["clusters"] == []
    assert described["failures"] == [
        {"arn": "arn:aws:ecs:us-east-1:000000000000:cluster/default", "reason": "MISSING"}
    ]
    # CreateCluster without a name: "If you don't specify a name for your cluster, you create
    # a cluster that's named default." (CreateCluster API reference)
    created = ecs.create_cluster()["cluster"]
    assert created["clusterName"] == "default"
    assert ecs.list_clusters()["clusterArns"] == [created["clusterArn"]]
    task = ecs.run_task(taskDefinition=arn)["tasks"][0]
    assert task["clusterArn"] == created["clusterArn"]
    wait_stopped(ecs, task["taskArn"])


def test_ecslocal_run_creates_the_default_cluster_once(fresh: Server, tmp_path: Path) -> None:
    """`ecslocal run` creates ``default`` on first use, as the console's first run does, and
    says so on stderr; the next run finds it."""
    path = tmp_path / "td.json"
    path.write_text(json.dumps(taskdef(uid("cli-default"), container("main", "echo ran"))))
    first = fresh.cli("run", str(path))
    assert first.returncode == 0, first.stderr
    assert "main | ran" in first.stdout
    assert "created cluster default" in first.stderr
    assert fresh.ecs().list_clusters()["clusterArns"] == [
        "arn:aws:ecs:us-east-1:000000000000:cluster/default"
    ]
    # As the console's new clusters, with both Fargate capacity providers.
    default = fresh.ecs().describe_clusters()["clusters"][0]
    assert default["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    second = fresh.cli("run", str(path))
    assert second.returncode == 0, second.stderr
    assert "created cluster" not in second.stderr


def test_create_cluster_keeps_capacity_providers_and_service_connect(server: Server) -> None:
    """CreateCluster's capacityProviders, defaultCapacityProviderStrategy and
    serviceConnectDefaults come back from CreateCluster and DescribeClusters as the botocore
    ``Cluster`` shape has them (a strategy item's base and weight default to 0)."""
    ecs = server.ecs()
    name = uid("cp")
    created = ecs.create_cluster(
        clusterName=name,
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        serviceConnectDefaults={"namespace": "local-ns"},
    )["cluster"]
    described = ecs.describe_clusters(clusters=[name])["clusters"][0]
    for cluster in (created, described):
        assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
        assert cluster["defaultCapacityProviderStrategy"] == [
            {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}
        ]
        assert cluster["serviceConnectDefaults"] == {"namespace": "local-ns"}


def test_describe_clusters_includes_settings_only_when_asked(server: Server) -> None:
    """DescribeClusters.include: "If this field is omitted, this information isn't included."
    SETTINGS adds the settings, CONFIGURATIONS the configuration (CreateCluster answers with
    everything)."""
    ecs = server.ecs()
    name = uid("inc")
    settings = [{"name": "containerInsights", "value": "enabled"}]
    configuration = {"executeCommandConfiguration": {"logging": "DEFAULT"}}
    created = ecs.create_cluster(clusterName=name, settings=settings, configuration=configuration)
    assert created["cluster"]["settings"] == settings
    assert created["cluster"]["configuration"] == configuration
    plain = ecs.describe_clusters(clusters=[name])["clusters"][0]
    assert "settings" not in plain and "configuration" not in plain
    full = ecs.describe_clusters(clusters=[name], include=["SETTINGS", "CONFIGURATIONS"])
    assert full["clusters"][0]["settings"] == settings
    assert full["clusters"][0]["configuration"] == configuration


def test_run_task_applies_the_cluster_default_strategy(server: Server) -> None:
    """RunTask with neither launchType nor capacityProviderStrategy uses the cluster's
    defaultCapacityProviderStrategy (RunTask API reference): FARGATE_SPOT gives launch type
    FARGATE and ``capacityProviderName`` FARGATE_SPOT; the base is met first, then the
    weights share the rest. An explicit launchType bypasses the strategy."""
    ecs = server.ecs()
    name = uid("cpd")
    ecs.create_cluster(
        clusterName=name,
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[
            {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 1},
        ],
    )
    td = ecs.register_task_definition(**taskdef(uid("cpd"), container("m", "true"), **FARGATE_TD))[
        "taskDefinition"
    ]["taskDefinitionArn"]
    tasks = ecs.run_task(cluster=name, taskDefinition=td, count=3)["tasks"]
    assert [t["launchType"] for t in tasks] == ["FARGATE"] * 3
    assert [t["capacityProviderName"] for t in tasks] == ["FARGATE", "FARGATE", "FARGATE_SPOT"]
    described = ecs.describe_tasks(cluster=name, tasks=[tasks[2]["taskArn"]])["tasks"][0]
    assert described["capacityProviderName"] == "FARGATE_SPOT"
    ec2 = ecs.run_task(cluster=name, taskDefinition=td, launchType="EC2")["tasks"][0]
    # A strategy may name only the providers associated with the cluster (ECS's words,
    # dask/dask-cloudprovider#328).
    bare = uid("bare")
    ecs.create_cluster(clusterName=bare)
    assert error(
        ecs.run_task,
        cluster=bare,
        taskDefinition=td,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT"}],
    ) == (
        "InvalidParameterException",
        "The specified capacity provider strategy cannot contain a capacity provider that is not"
        " associated with the cluster. Associate the capacity provider with the cluster or"
        " specify a valid capacity provider and try again.",
    )
    assert ecs.list_tasks(cluster=bare)["taskArns"] == []
    assert ec2["launchType"] == "EC2" and "capacityProviderName" not in ec2
    ends = [stopped(ecs, name, t["taskArn"]) for t in [*tasks, ec2]]
    # The provider stays with the task to the end.
    assert [t.get("capacityProviderName") for t in ends] == [
        "FARGATE",
        "FARGATE",
        "FARGATE_SPOT",
        None,
    ]


def test_deregister_without_a_revision(server: Server) -> None:
    """DeregisterTaskDefinition: "You must specify a revision." A family alone is refused with
    ECS's "Revision is missing." (ClientException; moto/ecs/exceptions.py reproduces it) and
    the revision stays ACTIVE."""
    ecs = server.ecs()
    family = uid("dereg")
    ecs.register_task_definition(**taskdef(family, container("m", "true")))
    assert error(ecs.deregister_task_definition, taskDefinition=family) == (
        "ClientException",
        "Revision is missing.",
    )
    found = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert found["status"] == "ACTIVE"


def test_arns_use_the_region_partition(tmp_path: Path) -> None:
    """In cn-north-1 every ARN is in the aws-cn partition (botocore partitions.json), the
    cluster, task definition, task and container ARNs and registeredBy alike; a reference in
    the aws partition names another partition's resource, so it is not found."""
    s = Server(tmp_path / "data", region="cn-north-1").start()
    try:
        ecs = s.ecs()
        prefix = "arn:aws-cn:ecs:cn-north-1:000000000000"
        assert ecs.list_clusters()["clusterArns"] == [f"{prefix}:cluster/default"]
        td = ecs.register_task_definition(**taskdef(uid("cn"), container("m", "true")))
        definition = td["taskDefinition"]
        assert definition["taskDefinitionArn"].startswith(f"{prefix}:task-definition/")
        assert definition["registeredBy"] == "arn:aws-cn:iam::000000000000:root"
        task = ecs.run_task(taskDefinition=definition["taskDefinitionArn"])["tasks"][0]
        assert task["taskArn"].startswith(f"{prefix}:task/default/")
        assert task["clusterArn"] == f"{prefix}:cluster/default"
        assert task["containers"][0]["containerArn"].startswith(f"{prefix}:container/default/")
        wait_stopped(ecs, task["taskArn"])
        described = ecs.describe_tasks(tasks=[task["taskArn"]])
        assert [t["taskArn"] for t in described["tasks"]] == [task["taskArn"]]
        foreign = task["taskArn"].replace("arn:aws-cn:", "arn:aws:")
        assert ecs.describe_tasks(tasks=[foreign])["failures"] == [
            {"arn": foreign, "reason": "MISSING"}
        ]
        other = "arn:aws:ecs:cn-north-1:000000000000:cluster/default"
        assert ecs.describe_clusters(clusters=[other])["clusters"] == []
        logs = s.client("logs")
        logs.create_log_group(logGroupName="cn-group")
        group = logs.describe_log_groups(logGroupNamePrefix="cn-group")["logGroups"][0]
        assert group["logGroupArn"] == "arn:aws-cn:logs:cn-north-1:000000000000:log-group:cn-group"
    finally:
        s.stop()
