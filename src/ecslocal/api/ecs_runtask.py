"""RunTask's rules, in one place: a validated request and its task definition in, the plans of
the tasks to start out (:class:`ecslocal.runtime.plan.TaskPlan`, one per task of ``count``).

What is decided here (each with ECS's error when the request breaks it): ``count`` and
``startedBy`` limits, the capacity provider strategy (the request's or the cluster's default)
and so the launch type, ``overrides`` against the task definition (``check_overrides``), the
task and execution roles' trust (``ecs-tasks.amazonaws.com``), tags and ``propagateTags``, the
task's group, cpu/memory and Fargate platform, each container's environment (environment
files included) and argv, and ecslocal's own task tags (``ecslocal:time-warp``,
``ecslocal:credential-ttl``). The API handler only parses and renders; the engine only runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ecslocal.api.ecs_capacity import capacity_provider_for, launch_type_of
from ecslocal.api.ecs_tags import Tags, check_tags, merge_tags
from ecslocal.auth.policy import Principal
from ecslocal.auth.roles import ECS_TASKS_PRINCIPAL, RoleStore
from ecslocal.config import Config
from ecslocal.errors import client_exception, invalid_parameter
from ecslocal.model.taskdef import (
    FARGATE_SIZES,
    MIN_CONTAINER_MEMORY_MIB,
    parse_cpu,
    parse_memory,
)
from ecslocal.runtime.model import freeze
from ecslocal.runtime.plan import ContainerPlan, TaskPlan
from ecslocal.runtime.timewarp import TIME_WARP_TAG, parse_speed
from ecslocal.store import Store

log = logging.getLogger("ecslocal.ecs")

MAX_RUN_COUNT = 10  # RunTask: "You can specify up to 10 tasks for each call."
MAX_STARTED_BY = 128  # RunTask.startedBy: "Up to 128 letters ..."
MAX_OVERRIDES_CHARS = 8192  # RunTask.overrides: "A total of 8192 characters are allowed"
CREDENTIAL_TTL_TAG = "ecslocal:credential-ttl"
STATIC_KEY_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class RunTaskRules:
    def __init__(
        self, config: Config, store: Store, roles: RoleStore | None, arn_prefix: str
    ) -> None:
        self.config = config
        self.arn_prefix = arn_prefix
        self.store = store
        self.roles = roles

    def plans(
        self,
        p: dict[str, Any],
        cluster: str,
        definition: dict[str, Any],
        definition_tags: Tags,
    ) -> list[TaskPlan]:
        """The plans of the tasks RunTask ``p`` starts on ``cluster`` from ``definition``."""
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
        launch_type = _launch_type(p, definition, strategy)
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
        plan = self._plan(definition, cluster_arn, launch_type, overrides, tags)
        plan = replace(
            plan,
            started_by=started_by,
            group=p.get("group") or plan.group,
            enable_execute_command=bool(p.get("enableExecuteCommand")),
        )
        # Task.capacityProviderName: "The capacity provider that's associated with the task."
        return [
            replace(plan, capacity_provider_name=capacity_provider_for(strategy, index))
            for index in range(count)
        ]

    def _plan(
        self,
        definition: dict[str, Any],
        cluster_arn: str,
        launch_type: str,
        overrides: dict[str, Any],
        tags: Tags,
    ) -> TaskPlan:
        region = self.config.region
        time_warp = _time_warp(tags)
        credential_ttl = _credential_ttl(tags)
        role_arn = overrides.get("taskRoleArn") or definition.get("taskRoleArn") or None
        by_name = {o["name"]: o for o in overrides.get("containerOverrides") or [] if "name" in o}
        containers, diagnostics = [], []
        for cdef in definition["containerDefinitions"]:
            override = by_name.get(cdef["name"], {})
            cdef = dict(cdef)
            for key in ("memory", "memoryReservation", "cpu"):
                if key in override:
                    cdef[key] = override[key]
            env = container_env(cdef, override, launch_type, region)
            warning = role_arn and static_credentials_warning(cdef["name"], env, role_arn)
            if warning:
                diagnostics.append(warning)
            containers.append(
                ContainerPlan(
                    definition=freeze(cdef), env=freeze(env), argv=container_argv(cdef, override)
                )
            )
        cpu = overrides.get("cpu", definition.get("cpu"))
        memory = overrides.get("memory", definition.get("memory"))
        fargate = launch_type == "FARGATE"
        return TaskPlan(
            definition=freeze(definition),
            cluster_arn=cluster_arn,
            launch_type=launch_type,
            overrides=freeze(
                {
                    "containerOverrides": overrides.get("containerOverrides")
                    or [{"name": c["name"]} for c in definition["containerDefinitions"]],
                    "inferenceAcceleratorOverrides": [],
                    **{k: v for k, v in overrides.items() if k != "containerOverrides"},
                }
            ),
            containers=tuple(containers),
            role_arn=role_arn,
            group=f"family:{definition['family']}",
            availability_zone=f"{region}a",
            tags=freeze(tags),
            cpu=str(cpu) if cpu else None,
            memory=str(memory) if memory else None,
            platform_version="1.4.0" if fargate else None,
            platform_family="Linux" if fargate else None,
            ephemeral_storage=freeze({"sizeInGiB": 20}) if fargate else None,
            time_warp=time_warp,
            credential_ttl=credential_ttl,
            diagnostics=tuple(diagnostics),
        )

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


def _launch_type(
    p: dict[str, Any], definition: dict[str, Any], strategy: list[dict[str, Any]]
) -> str:
    launch_type = p.get("launchType")
    if not launch_type:
        required = definition.get("requiresCompatibilities") or []
        launch_type = launch_type_of(strategy, "FARGATE" in required)
    if launch_type not in definition.get("compatibilities", []):
        raise client_exception(f"Task definition does not support launch_type {launch_type}.")
    return str(launch_type)


def tag_value(tags: Sequence[Mapping[str, str]], key: str) -> str | None:
    for tag in tags:
        if tag.get("key") == key:
            return tag.get("value", "")
    return None


def _time_warp(tags: Tags) -> float | None:
    """The task tag ``ecslocal:time-warp`` (a speed-up N): the task's clock, starting at its
    creation and running N times faster, shared by its processes and ecslocal."""
    value = tag_value(tags, TIME_WARP_TAG)
    if value is None:
        return None
    try:
        return parse_speed(value)
    except ValueError as exc:
        raise invalid_parameter(str(exc)) from None


def _credential_ttl(tags: Tags) -> float | None:
    """The task tag ``ecslocal:credential-ttl`` (seconds of the task's clock) overrides the
    daemon's credential lifetime."""
    value = tag_value(tags, CREDENTIAL_TTL_TAG)
    if value is None:
        return None
    try:
        ttl = float(value)
    except ValueError:
        ttl = -1.0
    if not 2 <= ttl <= 43200:
        raise invalid_parameter(
            f"Tag {CREDENTIAL_TTL_TAG} must be a number of seconds from 2 to 43200."
        )
    return ttl


def parse_env_file(path: str) -> dict[str, str]:
    """Docker's --env-file format: VAR=VAL lines; blank lines and # comments skipped."""
    out: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value
        elif key in os.environ:  # "VAR" alone takes the value from the environment
            out[key] = os.environ[key]
    return out


def container_argv(definition: dict[str, Any], override: dict[str, Any]) -> tuple[str, ...]:
    """entryPoint + command, as Docker combines them (an override's command replaces the
    definition's)."""
    command = override.get("command", definition.get("command")) or []
    return (*(definition.get("entryPoint") or []), *command)


def container_env(
    definition: dict[str, Any], override: dict[str, Any], launch_type: str, region: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    for env_file in definition.get("environmentFiles") or []:
        path = env_file["value"]
        if path.startswith("arn:"):
            raise invalid_parameter(
                f"environmentFiles value '{path}' is an S3 object; ecslocal reads environment"
                " files from local paths only."
            )
        try:
            env.update(parse_env_file(path.removeprefix("file://")))
        except OSError as exc:
            raise invalid_parameter(
                f"Container '{definition['name']}': cannot read environment file '{path}':"
                f" {exc.strerror}."
            ) from None
    # `environment` takes precedence over environment files (ECS developer guide).
    # KeyValuePair's members are optional in the model: a nameless entry sets nothing.
    for entries in (definition.get("environment"), override.get("environment")):
        env.update({e["name"]: e.get("value") or "" for e in entries or [] if e.get("name")})
    env["AWS_EXECUTION_ENV"] = "AWS_ECS_FARGATE" if launch_type == "FARGATE" else "AWS_ECS_EC2"
    if "AWS_REGION" not in env and "AWS_DEFAULT_REGION" not in env:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region
    return env


def static_credentials_warning(name: str, env: Mapping[str, str], role_arn: str) -> str | None:
    """The classic Fargate mistake, said at start: static keys in a container's environment
    shadow the task role (every SDK's default chain reads the environment first), and a
    session token there expires with nothing to refresh it."""
    found = [k for k in STATIC_KEY_VARS if env.get(k)]
    if not found:
        return None
    message = (
        f"container '{name}' has {', '.join(found)} in its environment and the task has the"
        f" task role {role_arn}: the AWS SDKs' default credential chain uses the environment"
        " first, so the container will not use the role's credentials"
    )
    if "AWS_SESSION_TOKEN" in found:
        message += (
            "; the AWS_SESSION_TOKEN there expires and nothing refreshes it — calls will then"
            " fail with ExpiredToken"
        )
    return message + "."


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
