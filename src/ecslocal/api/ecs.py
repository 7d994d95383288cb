"""Amazon ECS control plane (AWS JSON 1.1, target prefix AmazonEC2ContainerServiceV20141113).

Error codes and messages are ECS's own wherever a real one could be found; the source is noted
next to each. Where none could be found, the message says plainly what is wrong.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ecslocal import arns
from ecslocal.api.ecs_capacity import capacity_provider_for, launch_type_of
from ecslocal.api.ecs_refs import (
    CLUSTER_PATTERN,
    CLUSTER_RE,
    DEFAULT_CLUSTER,
    MAX_PAGE,
    Refs,
    paginate,
)
from ecslocal.api.ecs_tags import TaggingMixin, Tags, check_tags, merge_tags
from ecslocal.api.protocols.json import Encoded
from ecslocal.api.service import Handler, Service
from ecslocal.auth.caller import Caller
from ecslocal.auth.policy import Principal
from ecslocal.auth.roles import ECS_TASKS_PRINCIPAL, RoleStore
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.errors import AwsError, client_exception, cluster_not_found, invalid_parameter
from ecslocal.model.shapes import service_model, to_wire
from ecslocal.model.taskdef import (
    FARGATE_SIZES,
    MIN_CONTAINER_MEMORY_MIB,
    build_task_definition,
    parse_cpu,
    parse_memory,
    request_from_document,
    validate_register_request,
)
from ecslocal.runtime import reasons
from ecslocal.runtime.agent import Agent
from ecslocal.store import Store
from ecslocal.task_index import TaskSummary, decode_token, encode_token

#: DescribeTasks JSON kept at most (the cache starts over when full).
MAX_CACHED_TASKS = 20_000
MAX_RUN_COUNT = 10  # RunTask: "You can specify up to 10 tasks for each call."
MAX_DESCRIBE_TASKS = 100  # DescribeTasks: "A list of up to 100 task IDs or full ARN entries."
MAX_DELETE_TASK_DEFINITIONS = 10  # DeleteTaskDefinitions: "up to 10 task definitions"
MAX_STARTED_BY = 128  # RunTask.startedBy: "Up to 128 letters ..."
MAX_STOP_REASON = 255  # StopTask.reason: "Up to 255 characters are allowed in this message."
MAX_OVERRIDES_CHARS = 8192  # RunTask.overrides: "A total of 8192 characters are allowed"
#: The stored status of a deleted revision. DeleteTaskDefinitions reports DELETE_IN_PROGRESS;
#: ecslocal has nothing to wait for, so the revision is gone at once. The row stays so that
#: its number is never reused ("the revision is incremented the next time you create a task
#: definition with that name" - DeleteTaskDefinitions API reference).
DELETED = "DELETED"


#: Cluster members DescribeClusters shows only when ``include`` names them.
_INCLUDE_ONLY = {
    "tags": "TAGS",
    "settings": "SETTINGS",
    "configuration": "CONFIGURATIONS",
    "statistics": "STATISTICS",
}


class EcsApi(TaggingMixin):
    def __init__(
        self,
        config: Config,
        store: Store,
        agent: Agent,
        clock: Clock,
        roles: RoleStore | None = None,
    ) -> None:
        self.config = config
        self.roles = roles
        self.store = store
        self.agent = agent
        self.clock = clock
        self.refs = Refs(config.region, config.account_id)
        self.arn_prefix = self.refs.prefix
        #: DescribeTasks' JSON of each task, with the summary it was built from.
        self._wire_cache: dict[tuple[str, bool], tuple[TaskSummary, Any, bytes]] = {}
        self._shapes = _DescribeTasksShapes()

    def service(self) -> Service:
        handlers: dict[str, Handler] = {
            "CreateCluster": self.create_cluster,
            "DescribeClusters": self.describe_clusters,
            "ListClusters": self.list_clusters,
            "DeleteCluster": self.delete_cluster,
            "RegisterTaskDefinition": self.register_task_definition,
            "DescribeTaskDefinition": self.describe_task_definition,
            "ListTaskDefinitions": self.list_task_definitions,
            "ListTaskDefinitionFamilies": self.list_task_definition_families,
            "DeregisterTaskDefinition": self.deregister_task_definition,
            "DeleteTaskDefinitions": self.delete_task_definitions,
            "RunTask": self.run_task,
            "StopTask": self.stop_task,
            "DescribeTasks": self.describe_tasks,
            "ListTasks": self.list_tasks,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }
        return Service(
            "ecs",
            handlers,
            signing_name="ecs",
            target_prefix="AmazonEC2ContainerServiceV20141113",
            validation_error=("InvalidParameterException", 400),
        )

    # -- clusters ---------------------------------------------------------------------------
    def _new_cluster(self, name: str, tags: Tags, p: dict[str, Any]) -> dict[str, Any]:
        """The Cluster CreateCluster answers: what the request set of ``settings``,
        ``configuration``, ``capacityProviders``, ``defaultCapacityProviderStrategy`` and
        ``serviceConnectDefaults`` (botocore ``Cluster`` shape) is kept as given."""
        cluster: dict[str, Any] = {
            "clusterArn": f"{self.arn_prefix}:cluster/{name}",
            "clusterName": name,
            "status": "ACTIVE",
            "registeredContainerInstancesCount": 0,
            "runningTasksCount": 0,
            "pendingTasksCount": 0,
            "activeServicesCount": 0,
            "statistics": [],
            "tags": tags,
            "settings": p.get("settings") or [{"name": "containerInsights", "value": "disabled"}],
            "capacityProviders": list(p.get("capacityProviders") or []),
            "defaultCapacityProviderStrategy": [
                {"base": 0, "weight": 0, **item}
                for item in p.get("defaultCapacityProviderStrategy") or []
            ],
        }
        if p.get("configuration"):
            cluster["configuration"] = p["configuration"]
        if p.get("serviceConnectDefaults"):
            # ClusterServiceConnectDefaults.namespace: "The namespace name or full Amazon
            # Resource Name (ARN) of the Cloud Map namespace" - kept as the request named it.
            namespace = p["serviceConnectDefaults"]["namespace"]
            cluster["serviceConnectDefaults"] = {"namespace": namespace}
        return cluster

    def _cluster_name(self, ref: str | None) -> str:
        """The name of the ACTIVE cluster ``ref`` (name or ARN; the default one if omitted)."""
        name = self.refs.cluster(ref or DEFAULT_CLUSTER)
        cluster = self.store.get_cluster(name) if name else None
        if name is None or cluster is None or cluster["status"] != "ACTIVE":
            raise cluster_not_found()
        return name

    def _cluster_view(self, cluster: dict[str, Any], include: list[str]) -> dict[str, Any]:
        running = pending = 0
        for task, _ in self.store.list_tasks(cluster=cluster["clusterName"], not_stopped=True):
            if task["lastStatus"] == "RUNNING":
                running += 1
            else:
                pending += 1
        view = {**cluster, "runningTasksCount": running, "pendingTasksCount": pending}
        # DescribeClusters.include: "If this field is omitted, this information isn't
        # included": TAGS the tags, SETTINGS the settings, CONFIGURATIONS the configuration,
        # STATISTICS the task and service counts by launch type.
        for member, option in _INCLUDE_ONLY.items():
            if option not in include:
                view.pop(member, None)
        return view

    def create_cluster(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        name = p.get("clusterName") or DEFAULT_CLUSTER
        if not CLUSTER_RE.fullmatch(name):
            raise invalid_parameter(f"Cluster must match {CLUSTER_PATTERN}, but was {name}")
        tags = check_tags(p.get("tags") or [])
        existing = self.store.get_cluster(name)
        if existing is not None and existing["status"] == "ACTIVE":
            return {"cluster": self._cluster_view(existing, list(_INCLUDE_ONLY.values()))}
        cluster = self._new_cluster(name, tags, p)
        self.store.put_cluster(name, cluster)
        return {"cluster": cluster}

    def describe_clusters(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        include = p.get("include") or []
        clusters, failures = [], []
        for ref in p.get("clusters") or [DEFAULT_CLUSTER]:
            try:
                name = self.refs.cluster(ref)
            except AwsError:
                name = None
            cluster = self.store.get_cluster(name) if name else None
            if cluster is None:
                failures.append({"arn": self.refs.cluster_arn(ref), "reason": "MISSING"})
            else:
                clusters.append(self._cluster_view(cluster, include))
        return {"clusters": clusters, "failures": failures}

    def list_clusters(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        arns = [c["clusterArn"] for c in self.store.list_clusters() if c["status"] == "ACTIVE"]
        return paginate(arns, p, "clusterArns")

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
        if request.get("tags") == []:
            # ECS refuses an empty tag list here (fabfuel/ecs-deploy#146).
            raise client_exception("Tags can not be empty.")
        tags = check_tags(request.get("tags") or [])
        family = request["family"]
        revision = self.store.next_revision(family)
        root = arns.global_arn("iam", self.config.region, self.config.account_id, "root")
        body = build_task_definition(
            request,
            arn=f"{self.arn_prefix}:task-definition/{family}:{revision}",
            revision=revision,
            registered_at=self.clock.time(),
            registered_by=root,
        )
        self.store.put_task_definition(body, tags)
        return {"taskDefinition": body, "tags": tags}

    def _lookup_task_definition(self, ref: str) -> tuple[dict[str, Any], Tags] | None:
        """The revision ``ref`` names (a family alone: its latest ACTIVE revision)."""
        parsed = self.refs.task_definition(ref)
        if parsed is None or not parsed.own:
            return None
        found = self.store.get_task_definition(parsed.family, parsed.revision)
        if found is None or found[0]["status"] == DELETED:
            return None
        return found

    def _find_task_definition(self, ref: str) -> tuple[dict[str, Any], Tags]:
        found = self._lookup_task_definition(ref)
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
            family=p.get("familyPrefix"), status=p.get("status") or "ACTIVE"
        )
        arns = [b["taskDefinitionArn"] for b in bodies]
        if p.get("sort") == "DESC":
            arns.reverse()
        return paginate(arns, p, "taskDefinitionArns")

    def list_task_definition_families(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        # "By default, both ACTIVE and INACTIVE task definition families are listed. If this
        # parameter is set to ACTIVE, only task definition families that have an ACTIVE task
        # definition revision are returned. If this parameter is set to INACTIVE, only task
        # definition families that do not have any ACTIVE task definition revisions are
        # returned." (ListTaskDefinitionFamilies API reference)
        status = p.get("status") or "ALL"
        families = [
            family
            for family, active in self.store.task_definition_families(p.get("familyPrefix") or "")
            if status == "ALL" or active == (status == "ACTIVE")
        ]
        return paginate(families, p, "families")

    def deregister_task_definition(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        parsed = self.refs.task_definition(p["taskDefinition"])
        if parsed is not None and parsed.revision is None:
            # "You must specify a revision." (DeregisterTaskDefinition API reference); ECS's
            # words for a family alone as moto reproduces them (moto/ecs/exceptions.py,
            # RevisionNotFoundException: ClientException "Revision is missing.").
            raise client_exception("Revision is missing.")
        body, tags = self._find_task_definition(p["taskDefinition"])
        if body["status"] == "ACTIVE":
            body = {**body, "status": "INACTIVE", "deregisteredAt": self.clock.time()}
            self.store.put_task_definition(body, tags)
        return {"taskDefinition": body}

    def delete_task_definitions(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        refs = p["taskDefinitions"]
        # Messages and failure reasons as moto reproduces ECS's (moto/ecs/models.py).
        if not refs:
            raise invalid_parameter("size of TaskDefinition references list must be greater than 0")
        if len(refs) > MAX_DELETE_TASK_DEFINITIONS:
            raise invalid_parameter("Size of TaskDefinition references list cannot exceed 10")
        deleted, failures = [], []
        for ref in refs:
            parsed = self.refs.task_definition(ref)
            if parsed is None or parsed.revision is None:
                failures.append({
                    "arn": ref,
                    "reason": "The specified task definition identifier is invalid. Specify a"
                    " valid name or ARN and try again.",
                })
                continue
            arn = parsed.arn(self.arn_prefix) if parsed.own else ref
            found = self._lookup_task_definition(ref)
            if found is None:
                failures.append({
                    "arn": arn,
                    "reason": "The specified task definition does not exist. Specify a valid"
                    " account, family, revision and try again.",
                })
            elif found[0]["status"] == "ACTIVE":
                failures.append({
                    "arn": arn,
                    "reason": "The specified task definition is still in ACTIVE status. Please"
                    " deregister the target and try again.",
                })
            else:
                body = {
                    **found[0],
                    "status": "DELETE_IN_PROGRESS",
                    "deleteRequestedAt": self.clock.time(),
                }
                self.store.put_task_definition({**body, "status": DELETED}, [])
                deleted.append(body)
        return {"taskDefinitions": deleted, "failures": failures}

    # -- tasks ------------------------------------------------------------------------------
    def _runnable_definition(self, ref: str) -> tuple[dict[str, Any], Tags]:
        found = self._lookup_task_definition(ref)
        if found is None:
            raise invalid_parameter("TaskDefinition not found.")
        if found[0]["status"] != "ACTIVE":
            # "You can't use an INACTIVE task definition to run new tasks" (Deregister docs).
            raise invalid_parameter("TaskDefinition is inactive")
        return found

    def _strategy(self, p: dict[str, Any], cluster: str) -> list[dict[str, Any]]:
        """The capacity provider strategy of a RunTask: its own, or with neither it nor a
        ``launchType`` the cluster's default ("If no capacityProviderStrategy or launchType
        is specified, the defaultCapacityProviderStrategy for the cluster is used." - RunTask
        API reference)."""
        launch_type = p.get("launchType")
        strategy = list(p.get("capacityProviderStrategy") or [])
        if launch_type and strategy:
            raise invalid_parameter(
                "Specifying both a launch type and capacity provider strategy is not supported."
            )
        found = self.store.get_cluster(cluster) or {}
        if not launch_type and not strategy:
            strategy = list(found.get("defaultCapacityProviderStrategy") or [])
        associated = set(found.get("capacityProviders") or [])
        if any(item.get("capacityProvider") not in associated for item in strategy):
            # "A capacity provider must be associated with a cluster before being specified in
            # a capacity provider strategy" (ECS Developer Guide, cluster-capacity-providers);
            # ECS's words from dask/dask-cloudprovider#328 (FARGATE_SPOT on a cluster without).
            raise invalid_parameter(
                "The specified capacity provider strategy cannot contain a capacity provider"
                " that is not associated with the cluster. Associate the capacity provider with"
                " the cluster or specify a valid capacity provider and try again."
            )
        return strategy

    def _launch_type(
        self, p: dict[str, Any], definition: dict[str, Any], strategy: list[dict[str, Any]]
    ) -> str:
        launch_type = p.get("launchType")
        if not launch_type:
            required = definition.get("requiresCompatibilities") or []
            launch_type = launch_type_of(strategy, "FARGATE" in required)
        if launch_type not in definition.get("compatibilities", []):
            raise client_exception(f"Task definition does not support launch_type {launch_type}.")
        return str(launch_type)

    def run_task(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        definition, definition_tags = self._runnable_definition(p["taskDefinition"])
        count = p.get("count")
        count = 1 if count is None else count
        if not 1 <= count <= MAX_RUN_COUNT:
            raise invalid_parameter(f"count must be between 1 and {MAX_RUN_COUNT}.")
        started_by = p.get("startedBy")
        if started_by is not None and len(started_by) > MAX_STARTED_BY:
            # The form of ECS's message for its former limit: "startedBy longer than 36."
            # (convox/rack#1727).
            raise invalid_parameter(f"startedBy longer than {MAX_STARTED_BY}.")
        strategy = self._strategy(p, cluster)
        launch_type = self._launch_type(p, definition, strategy)
        overrides = check_overrides(p.get("overrides") or {}, definition, launch_type)
        cluster_arn = f"{self.arn_prefix}:cluster/{cluster}"
        for key in ("taskRoleArn", "executionRoleArn"):
            role_arn = overrides.get(key) or definition.get(key)
            if role_arn:
                self._check_role(role_arn, cluster_arn)
        tags = check_tags(p.get("tags") or [])
        if p.get("propagateTags") == "SERVICE":
            # "An error will be received if you specify the SERVICE option when running a task."
            raise invalid_parameter("propagateTags SERVICE is only valid for a service's tasks.")
        if p.get("propagateTags") == "TASK_DEFINITION":
            tags = merge_tags(definition_tags, tags)
        tasks = []
        for index in range(count):
            run = self.agent.start_task(
                definition,
                f"{self.arn_prefix}:cluster/{cluster}",
                launch_type=launch_type,
                overrides=overrides,
                started_by=started_by,
                group=p.get("group"),
                tags=tags,
            )
            run.task["enableExecuteCommand"] = bool(p.get("enableExecuteCommand"))
            provider = capacity_provider_for(strategy, index)
            if provider is not None:
                # Task.capacityProviderName: "The capacity provider that's associated with
                # the task."
                run.task["capacityProviderName"] = provider
            tasks.append(dict(run.task))
        return {"tasks": tasks, "failures": []}

    def _check_role(self, role_arn: str, cluster_arn: str) -> None:
        """ECS assumes the task (and execution) role as ``ecs-tasks.amazonaws.com``: the role
        must exist and its trust policy must admit that service principal. The request context
        carries aws:SourceAccount and aws:SourceArn (the cluster), for the confused-deputy
        conditions AWS recommends in task-role trust policies."""
        if self.roles is None:
            return
        role = self.roles.by_arn(role_arn)
        service = Principal("Service", ECS_TASKS_PRINCIPAL)
        context = {"aws:SourceAccount": self.config.account_id, "aws:SourceArn": cluster_arn}
        if role is None or not self.roles.trusts(role, "sts:AssumeRole", service, context):
            # ECS's wording (seen in service events and RunTask errors alike).
            raise invalid_parameter(
                f"ECS was unable to assume the role '{role_arn}' that was provided for this"
                " task. Please verify that the role being passed has the proper trust"
                " relationship and permissions and that your IAM user has permissions to pass"
                " this role."
            )

    def _find_task(self, ref: str, cluster: str) -> dict[str, Any] | None:
        task_id = self.refs.task_id(ref, cluster)
        task = self.agent.get_task(task_id) if task_id else None
        if task is None or task["clusterArn"] != f"{self.arn_prefix}:cluster/{cluster}":
            return None
        return task

    def stop_task(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        task = self._find_task(p["task"], cluster)
        if task is None:
            raise invalid_parameter("The referenced task was not found.")
        # A task that is stopping or stopped keeps its first stop code and reason.
        reason = (p.get("reason") or "")[:MAX_STOP_REASON] or None
        task_id = arns.task_id_of(task["taskArn"])
        stopped = self.agent.stop_task(task_id, reason, reasons.USER_INITIATED_CODE) or task
        return {"task": _task_view(stopped, include_tags=False)}

    def describe_tasks(self, p: dict[str, Any], caller: Caller) -> Encoded:
        refs = p["tasks"]
        # ECS's messages: "Tasks cannot be empty." (aws/copilot-cli#3551) and "taskIds can have
        # at most 100 items." (gchq/sleeper#555).
        if not refs:
            raise invalid_parameter("Tasks cannot be empty.")
        if len(refs) > MAX_DESCRIBE_TASKS:
            raise invalid_parameter(f"taskIds can have at most {MAX_DESCRIBE_TASKS} items.")
        cluster = self._cluster_name(p.get("cluster"))
        include_tags = "TAGS" in (p.get("include") or [])
        tasks: list[bytes] = []
        failures: list[dict[str, str]] = []
        seen: set[str] = set()
        for ref in refs:
            found = self._described(ref, cluster, include_tags)
            if found is None:
                failures.append({"arn": self.refs.task_arn(ref, cluster), "reason": "MISSING"})
            elif found[0] not in seen:
                seen.add(found[0])
                tasks.append(found[1])
        failures_json = json.dumps(to_wire(failures, self._shapes.failures)).encode()
        body = b'{"tasks": [' + b", ".join(tasks) + b'], "failures": ' + failures_json + b"}"
        return Encoded(body)

    def _described(self, ref: str, cluster: str, include_tags: bool) -> tuple[str, bytes] | None:
        """(ARN, DescribeTasks JSON) of the task ``ref`` names in ``cluster``; None if none.
        A task whose JSON is cached is answered from the index alone (no document read)."""
        # The usual reference is the task's own ARN or ID: matched against the index without
        # parsing it (anything else goes the long way, through Refs).
        candidate = ref.rsplit("/", 1)[-1]
        summary = self.store.tasks.get(candidate)
        if summary is not None and ref not in (summary.arn, candidate):
            summary = None
        if summary is not None and summary.cluster == cluster:
            cached = self._wire_cache.get((summary.task_id, include_tags))
            live = self.agent.tasks.get(summary.task_id)
            if (
                cached is not None
                and cached[0] is summary
                and (live is None or live.task.get("version") == cached[1])
            ):
                return summary.arn, cached[2]
        task = self._find_task(ref, cluster)
        if task is None:
            return None
        return task["taskArn"], self._task_wire(task, include_tags)

    def _task_wire(self, task: dict[str, Any], include_tags: bool) -> bytes:
        """The task's DescribeTasks JSON, cached until the task changes: a new summary in the
        store's index (every ``put_task`` makes one) or, for a running task, a new version.
        Building it was most of DescribeTasks' cost."""
        task_id = task["taskArn"].rsplit("/", 1)[-1]
        summary = self.store.tasks.get(task_id)
        version = task.get("version")
        cached = self._wire_cache.get((task_id, include_tags))
        if (
            cached is not None
            and summary is not None
            and cached[0] is summary
            and cached[1] == version
        ):
            return cached[2]
        body = json.dumps(to_wire(_task_view(task, include_tags), self._shapes.task)).encode()
        if summary is not None:
            if len(self._wire_cache) >= MAX_CACHED_TASKS:
                self._wire_cache.clear()
            self._wire_cache[(task_id, include_tags)] = (summary, version, body)
        return body

    def list_tasks(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        if p.get("serviceName") is not None:
            # ecslocal runs no services (ECS's answer: turbot/steampipe-plugin-aws#1415).
            raise AwsError("ServiceNotFoundException", "Service not found.")
        desired = p.get("desiredStatus") or "RUNNING"
        # "Although you can filter results based on a desired status of PENDING, this doesn't
        # return any results." No task here runs on a container instance or for a daemon.
        if desired == "PENDING" or p.get("containerInstance") or p.get("daemonName"):
            return paginate([], p, "taskArns")
        limit = p.get("maxResults")
        if limit is None:
            limit = MAX_PAGE
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_parameter(f"maxResults must be between 1 and {MAX_PAGE}.")
        token = p.get("nextToken")
        # One page from the store's index of task summaries: a bisection and a slice, however
        # many stopped tasks are remembered (no SQLite read, no document parsed).
        arns, last = self.store.tasks.page(
            (cluster, desired, p.get("family"), p.get("startedBy"), None, p.get("launchType")),
            decode_token(token) if token else None,
            limit,
        )
        out: dict[str, Any] = {"taskArns": arns}
        if last is not None:
            out["nextToken"] = encode_token(last)
        return out


class _DescribeTasksShapes:
    """The botocore shapes of a DescribeTasks answer's members (the model loads on first use)."""

    @functools.cached_property
    def _output(self) -> Any:
        return service_model("ecs").operation_model("DescribeTasks").output_shape

    @functools.cached_property
    def task(self) -> Any:
        return self._output.members["tasks"].member

    @functools.cached_property
    def failures(self) -> Any:
        return self._output.members["failures"]


def _task_view(task: dict[str, Any], include_tags: bool) -> dict[str, Any]:
    """A task as DescribeTasks shows it: tags only when asked for (``include: ["TAGS"]``)."""
    view = dict(task)
    if not include_tags:
        view.pop("tags", None)
    return view


def check_overrides(
    overrides: dict[str, Any], definition: dict[str, Any], launch_type: str
) -> dict[str, Any]:
    """RunTask's ``overrides``, checked against the task definition; task-level cpu and memory
    normalized to CPU units and MiB (as the task's ``cpu``/``memory`` are)."""
    container_overrides = overrides.get("containerOverrides") or []
    size = len(json.dumps(container_overrides, separators=(",", ":"), ensure_ascii=False))
    if size > MAX_OVERRIDES_CHARS:
        # ECS's message (convox/rack#1906, artilleryio/artillery#2584).
        raise invalid_parameter(f"Container Overrides length must be at most {MAX_OVERRIDES_CHARS}")
    names = {c["name"] for c in definition["containerDefinitions"]}
    for o in container_overrides:
        name = o.get("name")
        if name not in names:
            raise invalid_parameter(
                f"Override for container named {'null' if name is None else name} is not a"
                " container in the TaskDefinition."
            )
        for field in ("memory", "memoryReservation"):
            value = o.get(field)
            if value is not None and value < MIN_CONTAINER_MEMORY_MIB:
                raise invalid_parameter(
                    f"Invalid '{field}' setting for container '{name}'. At least"
                    f" {MIN_CONTAINER_MEMORY_MIB} MiB of memory is required for the container."
                )
    out = dict(overrides)
    for field, parse in (("cpu", parse_cpu), ("memory", parse_memory)):
        value = overrides.get(field)
        if value is None:
            continue
        try:
            amount = parse(value)
        except ValueError:
            amount = 0
        if amount <= 0:
            raise invalid_parameter(f"Invalid '{field}' setting for task: '{value}'.")
        out[field] = str(amount)
    if launch_type == "FARGATE" and ("cpu" in out or "memory" in out):
        cpu = int(out.get("cpu") or definition.get("cpu") or 0)
        memory = int(out.get("memory") or definition.get("memory") or 0)
        if memory not in FARGATE_SIZES.get(cpu, []):
            raise client_exception(
                f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory."
                " See the Amazon ECS documentation for the valid combinations."
            )
    return out
