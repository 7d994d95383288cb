"""Fuzz the ECS API: no request, however odd, gets a 5xx or an unshaped error.

Requests are generated from botocore's own input shapes (model-valid structures), from
hand-written strategies that reach deep into the handlers (real ARNs, real container names),
and from junk (wrong types, missing members, random JSON). They go out twice over: through boto3
with its client-side validation off, and as signed raw HTTP bodies, which also covers malformed
JSON, non-object bodies, deep nesting, lone surrogates and invalid UTF-8.

Every response must be a 200, or a 400 whose JSON body has ``__type`` and ``message`` strings.

Tasks do run: anything a generated task definition would execute (``command``, ``entryPoint``,
health checks, environment files) is rewritten to ``true`` or a missing file before sending, and
every task must have stopped by the end.

``FUZZ_EXAMPLES=n`` runs n examples per fuzz test (a longer hunt); ``FUZZ_DEBUG=1`` counts
outcomes by error message too (run with ``-s`` to see the summary).
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.model import Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from tests.conftest import Server

TARGET = "AmazonEC2ContainerServiceV20141113"
MODEL = botocore.session.get_session().get_service_model("ecs")
PREFIX = "arn:aws:ecs:us-east-1:000000000000"
OPERATIONS = [
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "DeregisterTaskDefinition",
    "DeleteTaskDefinitions",
    "ListTaskDefinitions",
    "ListTaskDefinitionFamilies",
    "RunTask",
    "DescribeTasks",
    "ListTasks",
    "StopTask",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "CreateCluster",
    "DeleteCluster",
    "DescribeClusters",
    "ListClusters",
]
SAFE_FAMILY = "fuzz-true"
SAFE_CLUSTER = "fuzz"
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
    database=None,
)


@dataclass
class Fuzzed:
    """The fuzz's server and the real identifiers generated requests refer to."""

    server: Server
    task_arn: str
    td_arn: str
    cluster_arn: str
    stats: dict[str, int] = field(default_factory=dict)
    pool: SearchStrategy[str] | None = None

    def count(self, outcome: str) -> None:
        self.stats[outcome] = self.stats.get(outcome, 0) + 1


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    server = Server(tmp_path_factory.mktemp("ecslocal-fuzz")).start()
    ecs = server.ecs()
    ecs.create_cluster(clusterName=SAFE_CLUSTER, tags=[{"key": "fuzz", "value": "1"}])
    td = ecs.register_task_definition(
        family=SAFE_FAMILY,
        containerDefinitions=[
            {"name": "main", "image": "busybox", "command": ["true"], "memory": 64},
            {
                "name": "side",
                "image": "busybox",
                "command": ["true"],
                "memory": 64,
                "essential": False,
            },
        ],
        tags=[{"key": "fuzz", "value": "1"}],
    )["taskDefinition"]
    for family in ("fz-a", "fz-b"):  # more families for RunTask and friends to find
        ecs.register_task_definition(
            family=family,
            containerDefinitions=[
                {"name": "main", "image": "busybox", "command": ["true"], "memory": 32}
            ],
        )
    task = ecs.run_task(cluster=SAFE_CLUSTER, taskDefinition=SAFE_FAMILY)["tasks"][0]
    state = Fuzzed(server, task["taskArn"], td["taskDefinitionArn"], f"{PREFIX}:cluster/fuzz")
    try:
        yield state
        _stop_everything(ecs)
    finally:
        print("fuzz outcomes:", state.stats)
        server.stop()
        errors = server_errors(server.output)
        assert not errors, "\n".join(errors)


def server_errors(output: list[str]) -> list[str]:
    """Each distinct traceback the server logged: what failed, where, and why."""
    found: dict[str, None] = {}
    what = where = ""
    for line in output:
        if " failed" in line and "ecslocal." in line:
            what = line.split(" ", 2)[-1].strip()
        elif line.strip().startswith('File "') and "/ecslocal/" in line:
            where = line.strip()
        elif line and not line[0].isspace() and ("Error" in line or "Exception" in line):
            found[f"{what} | {where} | {line.strip()[:200]}"] = None
    return list(found)


def _stop_everything(ecs: Any) -> None:
    """Stop every task the fuzz left running and wait until all are STOPPED."""
    deadline = time.monotonic() + 60
    clusters = [a for p in ecs.get_paginator("list_clusters").paginate() for a in p["clusterArns"]]
    for cluster in clusters:
        for arn in ecs.list_tasks(cluster=cluster)["taskArns"]:
            ecs.stop_task(cluster=cluster, task=arn)
    for cluster in clusters:
        pages = ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus="STOPPED")
        arns = [a for p in pages for a in p["taskArns"]]
        for i in range(0, len(arns), 100):
            while True:
                tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])["tasks"]
                if all(t["lastStatus"] == "STOPPED" for t in tasks):
                    break
                assert time.monotonic() < deadline, [t["lastStatus"] for t in tasks]
                time.sleep(0.2)


# -- strategies -------------------------------------------------------------------------------
def mostly(good: SearchStrategy[Any], other: SearchStrategy[Any], odds: int = 4) -> Any:
    """``good`` ``odds - 1`` times in ``odds``, else ``other``."""
    return st.integers(0, odds - 1).flatmap(lambda i: other if i == 0 else good)


def junk() -> SearchStrategy[Any]:
    """Any JSON value."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )


def strings(state: Fuzzed) -> SearchStrategy[str]:
    """Strings an ECS request might carry: real identifiers, near misses, odd text."""
    if state.pool is None:
        state.pool = _strings(state)
    return state.pool


def _strings(state: Fuzzed) -> SearchStrategy[str]:
    task_id = state.task_arn.rsplit("/", 1)[-1]
    known = [
        "",
        "default",
        SAFE_CLUSTER,
        SAFE_FAMILY,
        f"{SAFE_FAMILY}:1",
        f"{SAFE_FAMILY}:0",
        f"{SAFE_FAMILY}:x",
        f"{SAFE_FAMILY}:²",
        "main",
        "side",
        task_id,
        state.task_arn,
        state.td_arn,
        state.cluster_arn,
        state.task_arn.replace("us-east-1", "eu-west-1"),
        state.td_arn.replace("000000000000", "111111111111"),
        f"{PREFIX}:cluster/nope",
        f"{PREFIX}:task/fuzz",
        f"{PREFIX}:task/",
        f"{PREFIX}:service/fuzz/web",
        "arn:aws:ecs",
        "arn:aws:ecr:us-east-1:000000000000:repository/x",
        "TAGS",
        "ACTIVE",
        "INACTIVE",
        "FARGATE",
        "EC2",
        "256",
        "512",
        "0.25 vCPU",
        "1 GB",
        "inf vcpu",
        "nan GB",
        "-1",
        "1e999",
        "x" * 300,
        "é" * 129,
        "\x00",
        "a\nb",
        "🙂",
        "family:fuzz-true",
        "awsvpc",
    ]
    return (
        st.sampled_from(known)
        | st.text(max_size=20)
        | st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
    )


def integers() -> SearchStrategy[int]:
    return st.integers(min_value=-3, max_value=12) | st.sampled_from(
        [0, 100, 101, 128, 255, 256, 512, 1024, 2**31, -(2**63), 10**30]
    )


def from_shape(shape: Shape, state: Fuzzed, depth: int = 0, junk_rate: int = 0) -> Any:
    """A strategy for values of a botocore shape (model-valid types and structure); with
    ``junk_rate`` n, one value in n at every level is junk instead."""
    strategy = _from_shape(shape, state, depth, junk_rate)
    if not junk_rate:
        return strategy
    return st.integers(0, junk_rate - 1).flatmap(lambda i: junk() if i == 0 else strategy)


def _from_shape(shape: Shape, state: Fuzzed, depth: int, junk_rate: int) -> Any:
    kind = shape.type_name
    if depth > 5:
        return st.none()
    if kind == "structure":
        members = {
            name: from_shape(member, state, depth + 1, junk_rate)
            for name, member in shape.members.items()  # type: ignore[attr-defined]
        }
        required = {n: members.pop(n) for n in shape.required_members}  # type: ignore[attr-defined]
        return st.fixed_dictionaries(required, optional=members)
    if kind == "list":
        member = from_shape(shape.member, state, depth + 1, junk_rate)  # type: ignore[attr-defined]
        return st.lists(member, max_size=3)
    if kind == "map":
        value = from_shape(shape.value, state, depth + 1, junk_rate)  # type: ignore[attr-defined]
        return st.dictionaries(strings(state), value, max_size=3)
    if kind == "string":
        enum = getattr(shape, "enum", None)
        return st.sampled_from(enum) | strings(state) if enum else strings(state)
    if kind in ("integer", "long"):
        return integers()
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.floats(min_value=0, max_value=2e9)
    return junk()


def container_definitions(state: Fuzzed) -> SearchStrategy[list[dict[str, Any]]]:
    """Container definitions, mostly valid ones (so that tasks get to run)."""
    names = mostly(st.sampled_from(["main", "side", "init"]), st.text(max_size=6))
    dependency = st.fixed_dictionaries(
        {
            "containerName": names,
            "condition": st.sampled_from(["START", "COMPLETE", "SUCCESS", "HEALTHY", "NOPE"]),
        }
    )
    seconds = mostly(st.integers(5, 60), integers())
    definition = st.fixed_dictionaries(
        {
            "name": names,
            "image": mostly(st.just("busybox"), st.just(""), odds=10),
            "memory": mostly(st.integers(32, 512), integers(), odds=8),
        },
        optional={
            "memoryReservation": mostly(st.integers(6, 32), integers(), odds=8),
            "cpu": integers(),
            "essential": mostly(st.just(True), st.booleans()),
            "command": st.lists(strings(state), max_size=2),
            "entryPoint": st.lists(strings(state), max_size=2),
            "environment": st.lists(
                st.fixed_dictionaries(
                    {}, optional={"name": strings(state), "value": strings(state)}
                ),
                max_size=2,
            ),
            "environmentFiles": st.just([{"type": "s3", "value": "x.env"}]),
            "dependsOn": mostly(st.just([]), st.lists(dependency, max_size=2)),
            "healthCheck": st.fixed_dictionaries(
                {"command": st.just(["CMD", "true"])},
                optional={
                    "interval": seconds,
                    "timeout": mostly(st.integers(2, 5), integers()),
                    "retries": seconds,
                    "startPeriod": seconds,
                },
            ),
            "stopTimeout": mostly(st.integers(0, 120), integers()),
            "startTimeout": mostly(st.integers(0, 120), integers()),
            "logConfiguration": st.fixed_dictionaries(
                {"logDriver": st.sampled_from(["awslogs", "json-file"])},
                optional={
                    "options": st.dictionaries(
                        st.sampled_from(
                            ["awslogs-group", "awslogs-region", "awslogs-stream-prefix"]
                        ),
                        strings(state),
                        max_size=3,
                    )
                },
            ),
        },
    )
    return mostly(
        st.lists(definition, min_size=1, max_size=3, unique_by=lambda d: d["name"]),
        st.lists(definition, max_size=3),
    )


def curated(op: str, state: Fuzzed) -> SearchStrategy[dict[str, Any]] | None:
    """Requests that get past model validation into the handlers' own logic."""
    s = strings(state)
    clusters = mostly(st.sampled_from(["default", SAFE_CLUSTER, state.cluster_arn]), s)
    tasks = mostly(st.sampled_from([state.task_arn, state.task_arn.rsplit("/", 1)[-1]]), s)
    tags = st.lists(
        st.fixed_dictionaries(
            {"key": mostly(st.sampled_from(["a", "b", "fuzz"]), s)}, optional={"value": s}
        ),
        max_size=4,
    )
    resources = mostly(st.sampled_from([state.task_arn, state.td_arn, state.cluster_arn]), s)
    override = st.fixed_dictionaries(
        {},
        optional={
            "name": mostly(st.sampled_from(["main", "side"]), s, odds=8),
            "command": st.lists(s, max_size=2),
            "environment": st.lists(
                st.fixed_dictionaries({}, optional={"name": s, "value": s}), max_size=2
            ),
            "memory": mostly(st.integers(6, 512), integers()),
            "memoryReservation": mostly(st.integers(6, 512), integers()),
            "cpu": integers(),
        },
    )
    overrides = st.fixed_dictionaries(
        {},
        optional={
            "containerOverrides": st.lists(override, max_size=2),
            "cpu": mostly(st.sampled_from(["256", "512", "0.5 vCPU", "1024"]), s),
            "memory": mostly(st.sampled_from(["512", "1024", "1 GB", "2GB"]), s),
            "taskRoleArn": s,
            "executionRoleArn": s,
        },
    )
    requests: dict[str, SearchStrategy[dict[str, Any]]] = {
        "RegisterTaskDefinition": st.fixed_dictionaries(
            {
                "family": mostly(st.sampled_from(["fz-a", "fz-b", SAFE_FAMILY]), s, odds=8),
                "containerDefinitions": container_definitions(state),
            },
            optional={
                "cpu": mostly(st.sampled_from(["256", "512", "0.5 vCPU"]), s, odds=8),
                "memory": mostly(st.sampled_from(["512", "1024", "1 GB"]), s, odds=8),
                "tags": mostly(tags.filter(bool), st.just([])),
                "networkMode": st.sampled_from(["awsvpc", "bridge", "host"]),
                "requiresCompatibilities": mostly(
                    st.just(["EC2"]), st.lists(st.sampled_from(["EC2", "FARGATE"]), max_size=2)
                ),
            },
        ),
        "RunTask": st.fixed_dictionaries(
            {
                "taskDefinition": mostly(
                    st.sampled_from([SAFE_FAMILY, state.td_arn, "fz-a", "fz-b:1"]), s
                )
            },
            optional={
                "cluster": clusters,
                "count": mostly(st.integers(1, 3), integers()),
                "startedBy": s,
                "group": s,
                "tags": tags,
                "overrides": overrides,
                "launchType": st.sampled_from(["EC2", "FARGATE", "EXTERNAL"]),
                "propagateTags": st.sampled_from(["TASK_DEFINITION", "SERVICE", "NONE"]),
                "capacityProviderStrategy": st.lists(
                    st.fixed_dictionaries(
                        {"capacityProvider": st.sampled_from(["FARGATE", "FARGATE_SPOT"]) | s}
                    ),
                    max_size=2,
                ),
            },
        ),
        "DescribeTasks": st.fixed_dictionaries(
            {"tasks": st.lists(tasks, max_size=4)},
            optional={"cluster": clusters, "include": st.just(["TAGS"])},
        ),
        "StopTask": st.fixed_dictionaries(
            {"task": tasks}, optional={"cluster": clusters, "reason": s}
        ),
        "ListTasks": st.fixed_dictionaries(
            {},
            optional={
                "cluster": clusters,
                "family": s,
                "startedBy": s,
                "maxResults": integers(),
                "nextToken": s,
                "launchType": st.sampled_from(["EC2", "FARGATE"]),
                "desiredStatus": st.sampled_from(["RUNNING", "PENDING", "STOPPED"]),
            },
        ),
        "TagResource": st.fixed_dictionaries({"resourceArn": resources, "tags": tags}),
        "UntagResource": st.fixed_dictionaries(
            {"resourceArn": resources, "tagKeys": st.lists(s, max_size=3)}
        ),
        "ListTagsForResource": st.fixed_dictionaries({"resourceArn": resources}),
        "DeleteTaskDefinitions": st.fixed_dictionaries(
            {
                "taskDefinitions": st.lists(
                    st.sampled_from(["fz-a:1", "fz-b:2", f"{SAFE_FAMILY}:1"]) | s, max_size=12
                )
            }
        ),
        "DeregisterTaskDefinition": st.fixed_dictionaries(
            {"taskDefinition": st.sampled_from(["fz-a:1", "fz-b:1", "fz-a"]) | s}
        ),
        "CreateCluster": st.fixed_dictionaries(
            {},
            optional={
                "clusterName": mostly(st.sampled_from(["fz-c", "default", SAFE_CLUSTER]), s),
                "tags": tags,
            },
        ),
        "DeleteCluster": st.fixed_dictionaries({"cluster": st.sampled_from(["fz-c"]) | s}),
    }
    return requests.get(op)


def requests(state: Fuzzed) -> SearchStrategy[tuple[str, Any]]:
    """(operation, request) pairs."""

    def for_op(op: str) -> SearchStrategy[tuple[str, Any]]:
        shape = MODEL.operation_model(op).input_shape
        generic = st.one_of(
            from_shape(shape, state), from_shape(shape, state, junk_rate=25), junk()
        )
        good = curated(op, state)
        return st.tuples(st.just(op), generic if good is None else mostly(good, generic))

    return st.sampled_from(OPERATIONS).flatmap(for_op)


def made_safe(value: Any, parent: str = "") -> Any:
    """``value`` with everything a task would execute replaced by ``true`` (or a missing
    environment file), so that tasks the fuzz starts exit at once and touch nothing."""
    if isinstance(value, dict):
        return {k: _safe_member(k, v, parent) for k, v in value.items()}
    if isinstance(value, list):
        return [made_safe(v, parent) for v in value]
    return value


def _safe_member(key: str, value: Any, parent: str) -> Any:
    if key in ("command", "entryPoint") and isinstance(value, list):
        keep = [v for v in value if not isinstance(v, str)]
        return (["CMD", "true"] if parent == "healthCheck" else ["true"]) + keep
    if key == "environmentFiles" and isinstance(value, list):
        return [{"type": "s3", "value": "/nonexistent/ecslocal-fuzz.env"}]
    return made_safe(value, key)


def spared(op: str, request: Any, state: Fuzzed) -> Any:
    """``request``, sparing the cluster and task definition most generated requests use."""
    if not isinstance(request, dict):
        return request
    if op == "DeleteCluster" and request.get("cluster") in (
        "default",
        SAFE_CLUSTER,
        state.cluster_arn,
    ):
        return {**request, "cluster": "fz-c"}
    if op == "DeregisterTaskDefinition" and request.get("taskDefinition") in (
        f"{SAFE_FAMILY}:1",
        state.td_arn,
    ):
        return {**request, "taskDefinition": "fz-a:1"}
    return request


# -- the checks -------------------------------------------------------------------------------
def check_error_body(status: int, body: bytes) -> None:
    assert status == 400, (status, body[:500])
    doc = json.loads(body)
    assert isinstance(doc, dict), body[:500]
    assert isinstance(doc.get("__type"), str) and doc["__type"], body[:500]
    assert isinstance(doc.get("message"), str), body[:500]


def send_raw(server: Server, target: str, body: bytes, ctype: str) -> tuple[int, bytes]:
    """A SigV4-signed POST, as any AWS SDK would send it."""
    request = AWSRequest(
        method="POST",
        url=f"{server.url}/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": ctype},
    )
    SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(request)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", "/", body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def boto_client(server: Server) -> Any:
    return boto3.client(
        "ecs",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )


def outcome(op: str, error: dict[str, str]) -> str:
    """How an error is counted in the outcome summary (with its message if FUZZ_DEBUG is set)."""
    detail = f" {error['Message'][:90]}" if os.environ.get("FUZZ_DEBUG") else ""
    return f"{op} {error['Code']}{detail}"


def _method(op: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_")


def test_fuzz_through_boto3(fuzzed: Fuzzed) -> None:
    ecs = boto_client(fuzzed.server)
    generated = requests(fuzzed)

    @settings(SETTINGS, max_examples=int(os.environ.get("FUZZ_EXAMPLES", 160)))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        op, request = data.draw(generated)
        request = spared(op, made_safe(request), fuzzed)
        if not isinstance(request, dict):
            fuzzed.count("not a dict: raw HTTP only")
            return
        try:
            getattr(ecs, _method(op))(**request)
        except botocore.exceptions.ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            assert meta["HTTPStatusCode"] == 400, (op, request, exc.response)
            assert exc.response["Error"]["Code"], (op, request)
            assert isinstance(exc.response["Error"]["Message"], str), (op, request)
            fuzzed.count(outcome(op, exc.response["Error"]))
        except (
            botocore.exceptions.ParamValidationError,
            TypeError,
            ValueError,
            AttributeError,
            KeyError,
        ):
            fuzzed.count("botocore could not serialize it")  # the raw HTTP fuzz sends these
        else:
            fuzzed.count(f"{op} OK")

    check()


def bodies(state: Fuzzed) -> SearchStrategy[bytes]:
    def encoded(pair: tuple[str, Any]) -> bytes:
        return json.dumps(spared(pair[0], made_safe(pair[1]), state)).encode()

    valid = requests(state).map(encoded)
    truncated = st.tuples(valid, st.integers(0, 200)).map(lambda t: t[0][: t[1]])
    special = st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"1",
            b'"x"',
            b"{",
            b"}",
            b"{}",
            b"[" * 100_000,
            b'{"a":' * 50_000,
            b'{"cluster": "\\ud800"}',
            b'{"tags": [{"key": "\\udfff", "value": "x"}],'
            b' "resourceArn": "' + state.cluster_arn.encode() + b'"}',
            b'{"clusterName": "\\ud83d"}',
            b'{"task": "a\\udc00b"}',
            b'{"count": 1e400}',
            b'{"count": NaN}',
            b'{"count": 123456789012345678901234567890}',
            b'{"cluster": "\xff\xfe"}',
            b'{"cluster": "a", "cluster": 1}',
            b"\xef\xbb\xbf{}",
            b'{"taskDefinition": "fuzz-true", "overrides": {"cpu": "inf vcpu"}}',
            b'{"family": "fz", "containerDefinitions": [{"name": "a", "image": "b",'
            b' "memory": 64}], "cpu": "lots"}',
        ]
    )
    broken = st.one_of(
        truncated, special, st.binary(max_size=64), junk().map(lambda v: json.dumps(v).encode())
    )
    return mostly(valid, broken, odds=2)


def test_fuzz_raw_http(fuzzed: Fuzzed) -> None:
    targets = mostly(
        st.sampled_from(OPERATIONS).map(lambda op: f"{TARGET}.{op}"),
        st.sampled_from(
            [
                f"{TARGET}.CreateService",
                f"{TARGET}.",
                TARGET,
                "Nope.RunTask",
                f"{TARGET}.runTask",
                "",
                f"{TARGET}.RunTask.Extra",
            ]
        ),
        odds=8,
    )
    ctypes = st.sampled_from(["application/x-amz-json-1.1", "application/json", "text/plain"])

    @settings(SETTINGS, max_examples=int(os.environ.get("FUZZ_EXAMPLES", 120)))
    @given(target=targets, body=bodies(fuzzed), ctype=ctypes)
    def check(target: str, body: bytes, ctype: str) -> None:
        status, answer = send_raw(fuzzed.server, target, body, ctype)
        assert status < 500, (target, body[:300], answer[:500])
        if status != 200:
            check_error_body(status, answer)
            fuzzed.count(f"raw {json.loads(answer)['__type']}")
        else:
            assert isinstance(json.loads(answer), dict), answer[:300]
            fuzzed.count("raw OK")

    check()


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"cluster": "\\ud800"}', b'{"cluster": "\xff"}', b"{"],
    ids=["deep-nesting", "lone-surrogate", "invalid-utf8", "truncated"],
)
def test_malformed_bodies_are_serialization_errors(fuzzed: Fuzzed, body: bytes) -> None:
    status, answer = send_raw(fuzzed.server, f"{TARGET}.ListTasks", body, "application/json")
    check_error_body(status, answer)
    assert json.loads(answer)["__type"] == "SerializationException"


def test_fuzz_left_no_running_process(fuzzed: Fuzzed) -> None:
    """Tasks the fuzz started all end (they run `true`); none is left RUNNING."""
    ecs = fuzzed.server.ecs()
    _stop_everything(ecs)
    for cluster in ecs.list_clusters()["clusterArns"]:
        assert ecs.list_tasks(cluster=cluster)["taskArns"] == []
