"""ECS resource tags: TagResource, UntagResource, ListTagsForResource, and the rules every
``tags`` parameter follows (RunTask, CreateCluster, RegisterTaskDefinition).

Tags live with their resource: a cluster's in its document, a task definition's in its row, a
task's in the task document. Task definition ARNs must name a revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecslocal.api.ecs_refs import CLUSTER_RE, Refs, parse_arn
from ecslocal.auth.caller import Caller
from ecslocal.errors import AwsError, cluster_not_found, invalid_parameter
from ecslocal.runtime.agent import Agent
from ecslocal.store import Store

MAX_TAGS = 50  # "Maximum number of tags per resource - 50" (TagResource API reference)

Tags = list[dict[str, str]]


def check_tags(tags: list[dict[str, Any]], field: str = "tags") -> Tags:
    """Validate a request's tags: every tag has a key, keys are unique."""
    seen: set[str] = set()
    out: Tags = []
    for i, tag in enumerate(tags, 1):
        key = tag.get("key")
        if key is None:
            # The wording of AWS's request validation for a null member (see model.validate).
            raise invalid_parameter(
                f"1 validation error detected: Value null at '{field}.{i}.member.key' failed to"
                " satisfy constraint: Member must not be null"
            )
        if key in seen:
            # ECS's wording, relayed by EventBridge Scheduler for RunTask
            # (hashicorp/terraform-provider-aws#32259).
            raise invalid_parameter("Multiple tags contain the same key.")
        seen.add(key)
        value = tag.get("value")
        out.append({"key": key} if value is None else {"key": key, "value": value})
    return out


def merge_tags(existing: Tags, new: Tags) -> Tags:
    """``existing`` with ``new`` applied: a new value for a known key replaces the old one."""
    merged = {t["key"]: t for t in existing}
    merged.update({t["key"]: t for t in new})
    if len(merged) > MAX_TAGS:
        # TagResource's model lists LimitExceededException ("The limit for the resource was
        # exceeded."); the message is ecslocal's.
        raise AwsError(
            "LimitExceededException",
            f"The resource would have {len(merged)} tags; at most {MAX_TAGS} are allowed.",
        )
    return list(merged.values())


@dataclass
class Tagged:
    """A resource's tags and how to store new ones."""

    tags: Tags
    save: Callable[[Tags], None]


def resource_not_found() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified resource could not be found.")


class TaggingMixin:
    """The tag operations of :class:`ecslocal.api.ecs.EcsApi`."""

    store: Store
    agent: Agent
    refs: Refs

    def tag_resource(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        tags = check_tags(p["tags"])
        target = self._tagged(p["resourceArn"])
        target.save(merge_tags(target.tags, tags))
        return {}

    def untag_resource(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        target = self._tagged(p["resourceArn"])
        drop = set(p["tagKeys"])
        target.save([t for t in target.tags if t["key"] not in drop])
        return {}

    def list_tags_for_resource(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return {"tags": self._tagged(p["resourceArn"]).tags}

    def _tagged(self, resource_arn: str) -> Tagged:
        arn = parse_arn(resource_arn)
        if arn is None:
            # moto's and ECS's wording for a non-ECS ARN (boto/boto3#2774).
            raise invalid_parameter("The ARN provided is invalid.")
        if arn.kind == "cluster":
            return self._tagged_cluster(arn.resource if self.refs.own(arn) else None)
        if not self.refs.own(arn):
            raise resource_not_found()
        if arn.kind == "task-definition":
            return self._tagged_task_definition(resource_arn)
        if arn.kind == "task":
            return self._tagged_task(arn.resource)
        # Services, container instances, capacity providers, task sets: ecslocal has none.
        raise resource_not_found()

    def _tagged_cluster(self, name: str | None) -> Tagged:
        cluster = self.store.get_cluster(name) if name and CLUSTER_RE.fullmatch(name) else None
        if cluster is None or cluster["status"] != "ACTIVE":
            raise cluster_not_found()
        found: dict[str, Any] = cluster

        def save(tags: Tags) -> None:
            self.store.put_cluster(found["clusterName"], {**found, "tags": tags})

        return Tagged(list(found.get("tags") or []), save)

    def _tagged_task_definition(self, resource_arn: str) -> Tagged:
        ref = self.refs.task_definition(resource_arn)
        if ref is None or ref.revision is None:
            raise invalid_parameter("The ARN provided is invalid.")
        found = self.store.get_task_definition(ref.family, ref.revision)
        if found is None or found[0]["status"] not in ("ACTIVE", "INACTIVE"):
            raise resource_not_found()
        body, tags = found

        def save(new: Tags) -> None:
            self.store.put_task_definition(body, new)

        return Tagged(tags, save)

    def _tagged_task(self, resource: str) -> Tagged:
        cluster, _, task_id = resource.rpartition("/")
        task = self.agent.get_task(task_id) if task_id else None
        if task is None or (cluster and not task.cluster_arn.endswith(f":cluster/{cluster}")):
            raise resource_not_found()

        def save(tags: Tags) -> None:
            # The engine owns the task (running or stopped): it updates and stores it.
            self.agent.update_tags(task_id, tags)

        return Tagged([dict(t) for t in task.tags], save)
