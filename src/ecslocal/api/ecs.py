"""Amazon ECS control plane (AWS JSON 1.1, target prefix AmazonEC2ContainerServiceV20141113)."""

from __future__ import annotations

import base64
from typing import Any

from ecslocal.api.service import Handler, Service
from ecslocal.auth.caller import Caller
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.errors import AwsError, client_exception, cluster_not_found, invalid_parameter
from ecslocal.model.taskdef import (
    build_task_definition,
    request_from_document,
    validate_register_request,
)
from ecslocal.runtime import reasons
from ecslocal.runtime.agent import Agent
from ecslocal.store import Store

DEFAULT_CLUSTER = "default"


class EcsApi:
    def __init__(self, config: Config, store: Store, agent: Agent, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.agent = agent
        self.clock = clock
        self.arn_prefix = f"arn:aws:ecs:{config.region}:{config.account_id}"
        if store.get_cluster(DEFAULT_CLUSTER) is None:
            store.put_cluster(DEFAULT_CLUSTER, self._new_cluster(DEFAULT_CLUSTER, []))

    def service(self) -> Service:
        handlers: dict[str, Handler] = {
            "CreateCluster": self.create_cluster,
            "DescribeClusters": self.describe_clusters,
            "ListClusters": self.list_clusters,
            "DeleteCluster": self.delete_cluster,
            "RegisterTaskDefinition": self.register_task_definition,
            "DescribeTaskDefinition": self.describe_task_definition,
            "ListTaskDefinitions": self.list_task_definitions,
            "DeregisterTaskDefinition": self.deregister_task_definition,
            "RunTask": self.run_task,
            "StopTask": self.stop_task,
            "DescribeTasks": self.describe_tasks,
            "ListTasks": self.list_tasks,
        }
        return Service(
            "ecs",
            handlers,
            signing_name="ecs",
            target_prefix="AmazonEC2ContainerServiceV20141113",
            validation_error=("InvalidParameterException", 400),
        )

    # -- clusters ---------------------------------------------------------------------------
    def _new_cluster(self, name: str, tags: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "clusterArn": f"{self.arn_prefix}:cluster/{name}",
            "clusterName": name,
            "status": "ACTIVE",
            "registeredContainerInstancesCount": 0,
            "runningTasksCount": 0,
            "pendingTasksCount": 0,
            "activeServicesCount": 0,
            "statistics": [],
            "tags": tags,
            "settings": [{"name": "containerInsights", "value": "disabled"}],
            "capacityProviders": [],
            "defaultCapacityProviderStrategy": [],
        }

    def _cluster_name(self, ref: str | None) -> str:
        name = (ref or DEFAULT_CLUSTER).rsplit("/", 1)[-1]
        cluster = self.store.get_cluster(name)
        if cluster is None or cluster["status"] != "ACTIVE":
            raise cluster_not_found()
        return name

    def _with_counts(self, cluster: dict[str, Any]) -> dict[str, Any]:
        running = pending = 0
        for task, _ in self.store.list_tasks(cluster=cluster["clusterName"], not_stopped=True):
            if task["lastStatus"] == "RUNNING":
                running += 1
            else:
                pending += 1
        return {**cluster, "runningTasksCount": running, "pendingTasksCount": pending}

    def create_cluster(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        name = p.get("clusterName") or DEFAULT_CLUSTER
        existing = self.store.get_cluster(name)
        if existing is not None and existing["status"] == "ACTIVE":
            return {"cluster": self._with_counts(existing)}
        cluster = self._new_cluster(name, p.get("tags") or [])
        self.store.put_cluster(name, cluster)
        return {"cluster": cluster}

    def describe_clusters(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        clusters, failures = [], []
        for ref in p.get("clusters") or [DEFAULT_CLUSTER]:
            name = ref.rsplit("/", 1)[-1]
            cluster = self.store.get_cluster(name)
            if cluster is None:
                failures.append({"arn": f"{self.arn_prefix}:cluster/{name}", "reason": "MISSING"})
            else:
                clusters.append(self._with_counts(cluster))
        return {"clusters": clusters, "failures": failures}

    def list_clusters(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        arns = [c["clusterArn"] for c in self.store.list_clusters() if c["status"] == "ACTIVE"]
        return _paginate(arns, p, "clusterArns")

    def delete_cluster(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        name = self._cluster_name(p["cluster"])
        if any(True for _ in self.store.list_tasks(cluster=name, not_stopped=True)):
            raise AwsError(
                "ClusterContainsTasksException",
                "The Cluster cannot be deleted while Tasks are active.",
            )
        cluster = {**self.store.get_cluster(name), "status": "INACTIVE"}  # type: ignore[dict-item]
        self.store.put_cluster(name, cluster)
        return {"cluster": cluster}

    # -- task definitions -------------------------------------------------------------------
    def register_task_definition(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        request = request_from_document(p)
        validate_register_request(request)
        family = request["family"]
        revision = self.store.next_revision(family)
        body = build_task_definition(
            request,
            arn=f"{self.arn_prefix}:task-definition/{family}:{revision}",
            revision=revision,
            registered_at=self.clock.time(),
            registered_by=f"arn:aws:iam::{self.config.account_id}:root",
        )
        tags = request.get("tags") or []
        self.store.put_task_definition(body, tags)
        return {"taskDefinition": body, "tags": tags}

    def _find_task_definition(self, ref: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
        name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
        family, _, rev = name.partition(":")
        found = None
        if rev.isdigit():
            found = self.store.get_task_definition(family, int(rev))
        elif not rev:
            found = self.store.get_task_definition(family)
        if found is None:
            raise client_exception("Unable to describe task definition.")
        return found

    def describe_task_definition(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        body, tags = self._find_task_definition(p["taskDefinition"])
        out: dict[str, Any] = {"taskDefinition": body}
        if "TAGS" in (p.get("include") or []):
            out["tags"] = tags
        return out

    def list_task_definitions(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        bodies = self.store.list_task_definitions(
            family=p.get("familyPrefix"), status=p.get("status", "ACTIVE")
        )
        arns = [b["taskDefinitionArn"] for b in bodies]
        if p.get("sort") == "DESC":
            arns.reverse()
        return _paginate(arns, p, "taskDefinitionArns")

    def deregister_task_definition(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        body, tags = self._find_task_definition(p["taskDefinition"])
        if ":" not in p["taskDefinition"].rsplit("/", 1)[-1]:
            raise client_exception("The specified task definition must include a revision.")
        body = {**body, "status": "INACTIVE", "deregisteredAt": self.clock.time()}
        self.store.put_task_definition(body, tags)
        return {"taskDefinition": body}

    # -- tasks ------------------------------------------------------------------------------
    def run_task(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        try:
            definition, _ = self._find_task_definition(p["taskDefinition"])
        except AwsError:
            raise invalid_parameter("TaskDefinition not found.") from None
        if definition["status"] != "ACTIVE" and ":" not in p["taskDefinition"]:
            raise invalid_parameter("TaskDefinition is inactive")
        count = p.get("count", 1)
        if not 1 <= count <= 10:
            raise invalid_parameter("count must be between 1 and 10.")
        launch_type = p.get("launchType") or (
            "FARGATE" if "FARGATE" in (definition.get("requiresCompatibilities") or []) else "EC2"
        )
        if launch_type == "FARGATE" and "FARGATE" not in definition.get("compatibilities", []):
            raise client_exception(
                "Task definition does not support launch_type FARGATE."
            )
        names = {c["name"] for c in definition["containerDefinitions"]}
        for o in (p.get("overrides") or {}).get("containerOverrides") or []:
            if o.get("name") not in names:
                raise invalid_parameter(
                    f"Override for container named {o.get('name')} is not a container in the"
                    " TaskDefinition."
                )
        tasks = []
        for _ in range(count):
            run = self.agent.start_task(
                definition,
                f"{self.arn_prefix}:cluster/{cluster}",
                launch_type=launch_type,
                overrides=p.get("overrides"),
                started_by=p.get("startedBy"),
                group=p.get("group"),
                tags=p.get("tags") or [],
            )
            tasks.append(run.task)
        return {"tasks": tasks, "failures": []}

    def _task_id(self, ref: str) -> str:
        return ref.rsplit("/", 1)[-1]

    def stop_task(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        task_id = self._task_id(p["task"])
        task = self.agent.get_task(task_id)
        if task is None or not task["clusterArn"].endswith(f"/{cluster}"):
            raise invalid_parameter("The referenced task was not found.")
        task = self.agent.stop_task(task_id, p.get("reason"), reasons.USER_INITIATED_CODE)
        return {"task": task}

    def describe_tasks(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        tasks, failures = [], []
        for ref in p["tasks"]:
            task = self.agent.get_task(self._task_id(ref))
            if task is None or not task["clusterArn"].endswith(f"/{cluster}"):
                arn = ref if ref.startswith("arn:") else f"{self.arn_prefix}:task/{cluster}/{ref}"
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                tasks.append(task)
        return {"tasks": tasks, "failures": failures}

    def list_tasks(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        desired = p.get("desiredStatus", "RUNNING")
        family = p.get("family")
        arns = [
            task["taskArn"]
            for task, _ in self.store.list_tasks(
                cluster=cluster,
                desired_status=desired,
                family=family,
                started_by=p.get("startedBy"),
            )
        ]
        return _paginate(arns, p, "taskArns")


def _paginate(items: list[str], p: dict[str, Any], key: str) -> dict[str, Any]:
    start = 0
    token = p.get("nextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise invalid_parameter("Invalid nextToken.") from None
    limit = p.get("maxResults") or 100
    if not 1 <= limit <= 100:
        raise invalid_parameter("maxResults must be between 1 and 100.")
    page = items[start : start + limit]
    out: dict[str, Any] = {key: page}
    if start + limit < len(items):
        out["nextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
    return out
