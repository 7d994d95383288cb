"""Amazon ECS control plane (AWS JSON 1.1, target prefix AmazonEC2ContainerServiceV20141113).

Error codes and messages are ECS's own wherever a real one could be found; the source is noted
next to each. Where none could be found, the message says plainly what is wrong.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ecslocal import arns
from ecslocal.api.ecs_refs import (
    CLUSTER_PATTERN,
    CLUSTER_RE,
    DEFAULT_CLUSTER,
    MAX_PAGE,
    Refs,
    paginate,
)
from ecslocal.api.ecs_render import render_task
from ecslocal.api.ecs_runtask import RunTaskRules
from ecslocal.api.ecs_tags import TaggingMixin, Tags, check_tags
from ecslocal.api.protocols.json import Encoded
from ecslocal.api.service import Handler, Service
from ecslocal.auth.caller import Caller
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.errors import AwsError, client_exception, cluster_not_found, invalid_parameter
from ecslocal.model.shapes import service_model, to_wire
from ecslocal.model.taskdef import (
    build_task_definition,
    request_from_document,
    validate_register_request,
)
from ecslocal.runtime import reasons
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.model import TaskState
from ecslocal.runtime.plan import StartRefused
from ecslocal.store import Store
from ecslocal.task_index import TaskSummary, decode_token, encode_token

#: DescribeTasks JSON kept at most (the cache starts over when full).
MAX_CACHED_TASKS = 20_000
MAX_DESCRIBE_TASKS = 100  # DescribeTasks: "A list of up to 100 task IDs or full ARN entries."
MAX_DELETE_TASK_DEFINITIONS = 10  # DeleteTaskDefinitions: "up to 10 task definitions"
MAX_STOP_REASON = 255  # StopTask.reason: "Up to 255 characters are allowed in this message."
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
        #: RunTask's rules (api/ecs_runtask.py): a request in, the tasks' plans out.
        self.rules = RunTaskRules(config, store, roles, self.arn_prefix)
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
                failures.append(
                    {
                        "arn": ref,
                        "reason": "The specified task definition identifier is invalid. Specify a"
                        " valid name or ARN and try again.",
                    }
                )
                continue
            arn = parsed.arn(self.arn_prefix) if parsed.own else ref
            found = self._lookup_task_definition(ref)
            if found is None:
                failures.append(
                    {
                        "arn": arn,
                        "reason": "The specified task definition does not exist. Specify a valid"
                        " account, family, revision and try again.",
                    }
                )
            elif found[0]["status"] == "ACTIVE":
                failures.append(
                    {
                        "arn": arn,
                        "reason": "The specified task definition is still in ACTIVE status. Please"
                        " deregister the target and try again.",
                    }
                )
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

    def run_task(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        definition, definition_tags = self._runnable_definition(p["taskDefinition"])
        tasks = []
        for plan in self.rules.plans(p, cluster, definition, definition_tags):
            try:
                state = self.agent.start_task(plan)
            except StartRefused as exc:
                raise invalid_parameter(str(exc)) from None
            tasks.append(render_task(state))
        return {"tasks": tasks, "failures": []}

    def _find_task(self, ref: str, cluster: str) -> TaskState | None:
        task_id = self.refs.task_id(ref, cluster)
        task = self.agent.get_task(task_id) if task_id else None
        if task is None or task.cluster_arn != f"{self.arn_prefix}:cluster/{cluster}":
            return None
        return task

    def stop_task(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        cluster = self._cluster_name(p.get("cluster"))
        task = self._find_task(p["task"], cluster)
        if task is None:
            raise invalid_parameter("The referenced task was not found.")
        # A task that is stopping or stopped keeps its first stop code and reason.
        reason = (p.get("reason") or "")[:MAX_STOP_REASON] or None
        stopped = self.agent.stop_task(task.task_id, reason, reasons.USER_INITIATED_CODE) or task
        return {"task": render_task(stopped, include_tags=False)}

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
            if cached is not None and cached[0] is summary:
                live = self.agent.version_of(summary.task_id)
                if live is None or live == cached[1]:
                    return summary.arn, cached[2]
        task = self._find_task(ref, cluster)
        if task is None:
            return None
        return task.task_arn, self._task_wire(task, include_tags)

    def _task_wire(self, task: TaskState, include_tags: bool) -> bytes:
        """The task's DescribeTasks JSON, cached until the task changes: a new summary in the
        store's index (every ``put_task`` makes one) or, for a running task, a new version.
        Building it was most of DescribeTasks' cost."""
        task_id = task.task_id
        summary = self.store.tasks.get(task_id)
        version = task.version
        cached = self._wire_cache.get((task_id, include_tags))
        if (
            cached is not None
            and summary is not None
            and cached[0] is summary
            and cached[1] == version
        ):
            return cached[2]
        body = json.dumps(to_wire(render_task(task, include_tags), self._shapes.task)).encode()
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
