"""Task definitions: accept what ``register-task-definition --cli-input-json`` takes (or what
``describe-task-definition`` prints), validate as ECS does, and normalize to the stored shape."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ecslocal.errors import AwsError, client_exception
from ecslocal.model.shapes import service_model, shape, strip_unknown, validation_errors

#: Members of the TaskDefinition shape that ECS sets and RegisterTaskDefinition does not take.
READ_ONLY_FIELDS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
)

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}\Z")  # \Z: "$" would allow a final "\n"
CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")

# HealthCheck ranges and defaults, as the ECS API reference (HealthCheck) states them.
HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3}
HEALTH_RANGES = {
    "interval": (5, 300),
    "timeout": (2, 60),
    "retries": (1, 10),
    "startPeriod": (0, 300),
}
STOP_TIMEOUT_MAX = 120  # ContainerDefinition.stopTimeout: "maximum ... is 120 seconds" (Fargate)
START_TIMEOUT_MAX = 120  # ContainerDefinition.startTimeout on Fargate: 2-120
MIN_CONTAINER_MEMORY_MIB = 6  # Docker's floor; ECS refuses less than 6 MiB per container
#: Amazon ECS service quotas (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
#: service-quotas.html): "Container definitions per task definition: 10" and "Task definition
#: size: 64 KiB" (65536 bytes, the figure in ECS's own error message).
MAX_CONTAINERS = 10
MAX_TASK_DEFINITION_BYTES = 65536

# Fargate task size table: cpu units -> allowed memory (MiB).
_GB = 1024
FARGATE_SIZES: dict[int, list[int]] = {
    256: [512, 1 * _GB, 2 * _GB],
    512: [n * _GB for n in range(1, 5)],
    1024: [n * _GB for n in range(2, 9)],
    2048: [n * _GB for n in range(4, 17)],
    4096: [n * _GB for n in range(8, 31)],
    8192: [n * _GB for n in range(16, 61, 4)],
    16384: [n * _GB for n in range(32, 121, 8)],
}


def request_from_document(document: dict[str, Any]) -> dict[str, Any]:
    """The RegisterTaskDefinition request in ``document``.

    ``document`` is either a register request (``--cli-input-json``), a bare ``taskDefinition``
    object, or the whole ``describe-task-definition`` output ``{"taskDefinition": ..., "tags":
    [...]}``. Read-only fields are dropped.
    """
    if not isinstance(document, dict):
        raise client_exception("Task definition document must be a JSON object.")
    if "taskDefinition" in document and isinstance(document["taskDefinition"], dict):
        request = dict(document["taskDefinition"])
        if document.get("tags"):
            request["tags"] = document["tags"]
    else:
        request = dict(document)
    for field in READ_ONLY_FIELDS:
        request.pop(field, None)
    return request


def _rng(container: str, field: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise client_exception(
            f"Invalid '{field}' setting for container '{container}'. "
            f"The value must be between {lo} and {hi}."
        )


def _validate_size(request: dict[str, Any]) -> None:
    """ECS's 64 KiB quota, with ECS's message: "Actual length: '66420'. Max allowed length is
    '65536' bytes." (ClientException, as CloudTrail recorded it in
    awsdocs/amazon-ecs-developer-guide#149). What ECS measures is not documented; ecslocal
    counts the UTF-8 bytes of the request as compact JSON, which is what the SDKs send."""
    size = len(json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_TASK_DEFINITION_BYTES:
        raise client_exception(
            f"Actual length: '{size}'. Max allowed length is '{MAX_TASK_DEFINITION_BYTES}' bytes."
        )


def validate_register_request(request: dict[str, Any]) -> None:
    """Raise an ECS-shaped :class:`AwsError` if ``request`` is not a valid task definition."""
    _validate_size(request)
    input_shape = service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
    # Like every AWS JSON service, ECS ignores members it does not know; the CLI rejects them
    # before sending (see ecslocal.cli), as the aws CLI does.
    errors = [e for e in validation_errors(request, input_shape) if not e.startswith("Unknown")]
    if errors:
        raise client_exception("; ".join(errors))

    family = request["family"]
    if not NAME_RE.match(family):
        raise client_exception(
            "Family contains invalid characters or is too long. Up to 255 letters (uppercase and"
            " lowercase), numbers, underscores, and hyphens are allowed."
        )
    containers = request["containerDefinitions"]
    if not containers:
        raise client_exception("Container list cannot be empty.")
    if len(containers) > MAX_CONTAINERS:
        # ECS's words (ClientException: aws/amazon-ecs-cli#184, #951).
        raise client_exception("Too many containers.")

    for field, parse in (("cpu", parse_cpu), ("memory", parse_memory)):
        if request.get(field) is not None:
            try:
                parse(request[field])
            except ValueError as exc:
                raise client_exception(str(exc)) from None
    fargate = "FARGATE" in (request.get("requiresCompatibilities") or [])
    names: set[str] = set()
    for c in containers:
        name = c.get("name")
        if not name:
            raise client_exception("Container.name should not be null or empty.")
        if not NAME_RE.match(name):
            raise client_exception(
                f"Container name '{name}' contains invalid characters. Up to 255 letters"
                " (uppercase and lowercase), numbers, hyphens, and underscores are allowed."
            )
        if name in names:
            raise client_exception(f"Duplicate container name '{name}' in task definition.")
        names.add(name)
        if not c.get("image"):
            raise client_exception("Container.image should not be null or empty.")
        _validate_container_limits(c, request, fargate)
        _validate_health_check(c)
        if "stopTimeout" in c:
            _rng(name, "stopTimeout", c["stopTimeout"], 2 if fargate else 0, STOP_TIMEOUT_MAX)
        if "startTimeout" in c:
            _rng(name, "startTimeout", c["startTimeout"], 2 if fargate else 0, START_TIMEOUT_MAX)
        _validate_log_configuration(c, fargate)

    if not any(c.get("essential", True) for c in containers):
        # Wording as ECS returns it (seen in eagletmt/hako#68).
        raise client_exception("Task definition doesn't have any essential container.")
    _validate_depends_on(containers)
    if fargate:
        _validate_fargate(request)


def _validate_container_limits(c: dict[str, Any], request: dict[str, Any], fargate: bool) -> None:
    name = c["name"]
    memory, reservation = c.get("memory"), c.get("memoryReservation")
    for field, value in (("memory", memory), ("memoryReservation", reservation)):
        if value is not None and value < MIN_CONTAINER_MEMORY_MIB:
            raise client_exception(
                f"Invalid '{field}' setting for container '{name}'. At least"
                f" {MIN_CONTAINER_MEMORY_MIB} MiB of memory is required for the container."
            )
    if memory is not None and reservation is not None and reservation > memory:
        raise client_exception(
            f"Invalid setting for container '{name}'. 'memory' must be greater than or equal to"
            " 'memoryReservation'."
        )
    if not fargate and memory is None and reservation is None and not request.get("memory"):
        raise client_exception(
            f"Invalid setting for container '{name}'. At least one of 'memory' or"
            " 'memoryReservation' must be specified."
        )


def _validate_health_check(c: dict[str, Any]) -> None:
    hc = c.get("healthCheck")
    if hc is None:
        return
    # ECS registers a command whatever its first element: the ADOT collector's published
    # Fargate task definitions use ["/healthcheck"] (aws-observability/aws-otel-collector#2034,
    # examples/ecs/aws-cloudwatch/ecs-fargate-sidecar.json). How it then runs is
    # runtime.health's concern.
    command = hc.get("command") or []
    if not command:
        raise client_exception(
            f"Invalid 'healthCheck' setting for container '{c['name']}'. The command must not be"
            " empty."
        )
    if command[0] in ("CMD", "CMD-SHELL") and len(command) < 2:
        raise client_exception(
            f"Invalid 'healthCheck' setting for container '{c['name']}'. The command must not be"
            " empty."
        )
    for field, (lo, hi) in HEALTH_RANGES.items():
        if field in hc:
            _rng(c["name"], f"healthCheck.{field}", hc[field], lo, hi)


def _validate_log_configuration(c: dict[str, Any], fargate: bool) -> None:
    log = c.get("logConfiguration")
    if not log or log.get("logDriver") != "awslogs":
        return
    options = log.get("options") or {}
    missing = [o for o in ("awslogs-region", "awslogs-group") if not options.get(o)]
    if missing:
        # ECS's wording (klothoplatform/klotho#892): "Log driver awslogs requires options: ..."
        raise client_exception(f"Log driver awslogs requires options: {', '.join(missing)}")
    if fargate and not options.get("awslogs-stream-prefix"):
        raise client_exception(
            f"Invalid 'logConfiguration' setting for container '{c['name']}'. The awslogs log"
            " driver on Fargate requires the 'awslogs-stream-prefix' option."
        )


def _validate_depends_on(containers: list[dict[str, Any]]) -> None:
    by_name = {c["name"]: c for c in containers}
    graph: dict[str, list[str]] = {}
    for c in containers:
        deps = []
        for dep in c.get("dependsOn") or []:
            target, condition = dep.get("containerName"), dep.get("condition")
            if target not in by_name:
                raise client_exception(
                    f"Invalid 'dependsOn' setting for container '{c['name']}'. Container"
                    f" '{target}' does not exist in the task definition."
                )
            if condition not in CONDITIONS:
                raise client_exception(
                    f"Invalid 'dependsOn' setting for container '{c['name']}'. Condition"
                    f" '{condition}' must be one of {', '.join(CONDITIONS)}."
                )
            if target == c["name"]:
                raise client_exception(
                    f"Invalid 'dependsOn' setting for container '{c['name']}'. A container cannot"
                    " depend on itself."
                )
            dependency = by_name[target]
            if condition in ("COMPLETE", "SUCCESS") and dependency.get("essential", True):
                # ECS's wording (boto/boto3#2436).
                raise client_exception(
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an"
                    " essential container"
                )
            if condition == "HEALTHY" and not _has_health_check(dependency):
                raise client_exception(
                    f"Invalid 'dependsOn' setting for container '{c['name']}'. The HEALTHY"
                    f" condition requires a health check on container '{target}'."
                )
            deps.append(target)
        graph[c["name"]] = deps
    cycle = _find_cycle(graph)
    if cycle:
        raise client_exception(
            "Invalid 'dependsOn' setting. The container dependencies form a cycle: "
            + " -> ".join(cycle)
            + "."
        )


def _has_health_check(c: dict[str, Any]) -> bool:
    command = (c.get("healthCheck") or {}).get("command") or []
    return bool(command) and command[0] != "NONE"


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        stack.append(node)
        for nxt in graph[node]:
            if color[nxt] == GREY:
                return stack[stack.index(nxt) :] + [nxt]
            if color[nxt] == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = BLACK
        return None

    for node in graph:
        if color[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def _validate_fargate(request: dict[str, Any]) -> None:
    if request.get("networkMode") != "awsvpc":
        raise client_exception("Fargate only supports network mode 'awsvpc'.")
    if request.get("pidMode") == "host":
        # ECS's words (ClientException, relayed by CloudFormation in aws/aws-cdk#29619).
        raise client_exception(
            "Tasks using the Fargate launch type do not support pidMode 'host'. The supported"
            " value for pidMode is 'task'."
        )
    cpu, memory = request.get("cpu"), request.get("memory")
    if not cpu or not memory:
        raise client_exception(
            "Fargate requires that 'cpu' be defined at the task level."
            if not cpu
            else "Fargate requires that 'memory' be defined at the task level."
        )
    try:
        cpu_units, memory_mib = parse_cpu(cpu), parse_memory(memory)
    except ValueError as exc:
        raise client_exception(str(exc)) from None
    if memory_mib not in FARGATE_SIZES.get(cpu_units, []):
        raise client_exception(
            "No Fargate configuration exists for given values: "
            f"{cpu_units} CPU, {memory_mib} memory. See the Amazon ECS documentation for the"
            " valid combinations."
        )


def parse_cpu(value: str) -> int:
    """Task-level cpu: "256" CPU units or "0.25 vCPU"."""
    return _parse_amount(value, "vcpu", "cpu")


def parse_memory(value: str) -> int:
    """Task-level memory: "512" MiB or "1 GB"."""
    return _parse_amount(value, "gb", "memory")


_UNITS = re.compile(r"[0-9]{1,9}")


def _parse_amount(value: str, suffix: str, field: str) -> int:
    """``value`` in units (digits) or in ``suffix`` units of 1024; ValueError if it is neither
    (or is negative, NaN, infinite)."""
    text = value.strip().lower()
    try:
        if text.endswith(suffix):
            amount = float(text[: -len(suffix)].strip()) * 1024
            if math.isfinite(amount) and amount >= 0:
                return int(amount)
        elif _UNITS.fullmatch(text):
            return int(text)
    except ValueError:
        pass
    raise ValueError(f"Invalid '{field}' setting for task: '{value}'.")


def build_task_definition(
    request: dict[str, Any], *, arn: str, revision: int, registered_at: float, registered_by: str
) -> dict[str, Any]:
    """The stored TaskDefinition object for a validated register request."""
    td_shape = shape("ecs", "TaskDefinition")
    body: dict[str, Any] = strip_unknown(
        {k: v for k, v in request.items() if k != "tags"}, td_shape
    )
    containers = []
    for c in body["containerDefinitions"]:
        c = dict(c)
        # The defaults DescribeTaskDefinition shows for every container definition.
        c.setdefault("cpu", 0)
        c.setdefault("portMappings", [])
        c.setdefault("essential", True)
        c.setdefault("environment", [])
        c.setdefault("mountPoints", [])
        c.setdefault("volumesFrom", [])
        c.setdefault("systemControls", [])
        if "healthCheck" in c:
            c["healthCheck"] = {**HEALTH_DEFAULTS, **c["healthCheck"]}
        containers.append(c)
    body["containerDefinitions"] = containers
    network_mode = body.get("networkMode")
    compatibilities = ["EC2"]
    if network_mode == "awsvpc" and body.get("cpu") and body.get("memory"):
        compatibilities.append("FARGATE")
    body.update(
        taskDefinitionArn=arn,
        revision=revision,
        status="ACTIVE",
        volumes=body.get("volumes", []),
        placementConstraints=body.get("placementConstraints", []),
        compatibilities=compatibilities,
        requiresAttributes=[],
        registeredAt=registered_at,
        registeredBy=registered_by,
    )
    if "cpu" in body:
        body["cpu"] = str(parse_cpu(body["cpu"]))
    if "memory" in body:
        body["memory"] = str(parse_memory(body["memory"]))
    return body


__all__ = [
    "AwsError",
    "build_task_definition",
    "request_from_document",
    "validate_register_request",
]
