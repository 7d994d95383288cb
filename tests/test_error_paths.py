"""One error path outside the AWS gateway: the container-facing endpoints and ecslocal's own API
answer a storage fault or an unexpected exception in their own error shape (never aiohttp's
500 page), and a method a known route does not take is a 405 with ``Allow``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ecslocal.api.local_auth import FAILURES, PREFIX
from ecslocal.api.server import AwsRouter, build_app
from ecslocal.auth.authenticator import Authenticator
from ecslocal.auth.keys import KeyStore
from ecslocal.clock import Clock
from ecslocal.endpoints import failures
from ecslocal.endpoints.app import Scope, TaskEndpointApps
from ecslocal.endpoints.faults import Faults
from ecslocal.endpoints.ratelimit import TaskRateLimits
from ecslocal.storage.db import Database, StorageError
from tests.conftest import (
    TRUST_ACCOUNT,
    Server,
    container,
    ecs_task_role,
    run_task,
    signed,
    taskdef,
)
from tests.test_durability import _fill, tmpfs  # noqa: F401 - the fixture
from tests.test_task_credentials import PRINT_ENDPOINT, endpoint_of

STORAGE_LINE = "cannot write state.db (/x/state.db): the disk is full (database or disk is full)"


# -- the middleware, on the daemon's own app classes with routes that fail ------------------------
def _failing(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        if kind == "storage":
            raise StorageError(STORAGE_LINE)
        raise RuntimeError("a bug with a secret in its message")

    return handler


def _scope(request: web.Request) -> Scope[None]:
    return Scope("metadata", None, None)


async def _answers(tmp_path: Path) -> dict[tuple[str, str], tuple[int, str, str]]:
    db = Database(tmp_path / "state.db")
    try:
        clock = Clock()
        endpoints = TaskEndpointApps(Faults(clock), TaskRateLimits(clock, enabled=False))
        shapes = {
            "/v2/credentials": failures.credentials,
            "/v4": failures.metadata,
            "/api": failures.task_protection,
            "/latest": failures.imds,
        }
        for prefix, shape in shapes.items():
            routes = [
                web.get("/storage", _failing("storage")),
                web.get("/bug", _failing("bug"), name="task"),
            ]
            endpoints.mount(prefix, _scope, routes, shape)
        local = [web.get(f"{PREFIX}/{kind}", _failing(kind)) for kind in ("storage", "bug")]
        router = AwsRouter([], Authenticator(KeyStore(db), Clock(), "us-east-1"))
        app = build_app(router, local, endpoints.add_to, [FAILURES])
        answers: dict[tuple[str, str], tuple[int, str, str]] = {}
        async with TestServer(app) as server, aiohttp.ClientSession() as client:
            for prefix in [*shapes, PREFIX]:
                for kind in ("storage", "bug"):
                    # Accept: text/html is what makes aiohttp's own 500 page an HTML one.
                    url = server.make_url(f"{prefix}/{kind}")
                    async with client.get(url, headers={"Accept": "text/html"}) as r:
                        answers[prefix, kind] = (r.status, r.content_type, await r.text())
        return answers
    finally:
        db.close()


def test_each_endpoint_answers_failures_in_its_own_shape(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        answers = asyncio.run(_answers(tmp_path))
    for (prefix, kind), (status, _, text) in answers.items():
        assert status == 500, (prefix, kind, text)
        assert "Traceback" not in text and "secret" not in text, (prefix, kind, text)
        assert "Server got itself in trouble" not in text, (prefix, kind, text)  # aiohttp's page

    def body(prefix: str, kind: str) -> Any:
        status, content_type, text = answers[prefix, kind]
        return json.loads(text) if content_type == "application/json" else text

    # The agent's ErrorMessage (ecs-agent/tmds/handlers/v1/credentials_handler.go).
    assert body("/v2/credentials", "bug") == {
        "code": "InternalServerError",
        "message": "Internal server error",
    }
    assert body("/v2/credentials", "storage") == {
        "code": "InternalServerError",
        "message": STORAGE_LINE,
    }
    # A JSON string (ecs-agent/tmds/handlers/v4/handlers.go).
    assert body("/v4", "bug") == "failed to get task metadata"
    assert body("/v4", "storage") == STORAGE_LINE
    # The task protection ErrorResponse (taskprotection/v1/handlers/handlers.go).
    assert body("/api", "bug") == {
        "error": {"Code": "ServerException", "Message": "Unexpected error occurred"}
    }
    assert body("/api", "storage") == {
        "error": {"Code": "ServerException", "Message": STORAGE_LINE}
    }
    # IMDS: plain text.
    assert answers["/latest", "storage"][1:] == ("text/plain", STORAGE_LINE)
    assert answers["/latest", "bug"][1] == "text/plain"
    # ecslocal's own API: {"message"}.
    assert body(PREFIX, "storage") == {"message": STORAGE_LINE}
    assert set(body(PREFIX, "bug")) == {"message"}

    # Each unexpected exception is logged once, with its traceback, and nothing else is: the
    # storage faults were logged by storage/db.py where they happened.
    bugs = [r for r in caplog.records if r.exc_info and "secret" in str(r.exc_info[1])]
    assert len(bugs) == 5, [r.getMessage() for r in caplog.records]
    assert all(r.name == "ecslocal.http" for r in bugs)
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]


# -- storage faults on a real daemon --------------------------------------------------------
def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    return _open(request)


def _open(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _one_line(text: str) -> str:
    assert "\n" not in text and "Traceback" not in text, text
    assert "state.db" in text and "disk is full" in text, text
    return text


def test_storage_faults_at_the_endpoints_are_their_own_one_line_500(tmpfs: Path) -> None:  # noqa: F811
    role_arn = "arn:aws:iam::000000000000:role/instance-role"
    server = Server(
        tmpfs / "data", "--instance-role", role_arn, "--credential-ttl", "2", default_cluster=True
    ).start()
    filler: Path | None = None
    try:
        trust = {"Service": "ec2.amazonaws.com"}
        document = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": trust, "Action": "sts:AssumeRole"}],
            }
        )
        server.client("iam").create_role(
            RoleName="instance-role", AssumeRolePolicyDocument=document
        )
        ecs = server.ecs()
        task_role = ecs_task_role(server, "errors-creds")
        arn = run_task(
            ecs, taskdef("errors", container("app", PRINT_ENDPOINT), taskRoleArn=task_role)
        )
        uri, token = endpoint_of(server, arn)
        status, first = _get(uri, {"Authorization": token})
        assert status == 200
        issued = time.time()
        ttl_header = {"X-aws-ec2-metadata-token-ttl-seconds": "600"}
        status, imds_token = _get(f"{server.url}/latest/api/token", ttl_header, "PUT")
        assert status == 200
        iam = server.client("iam")
        own = iam.create_role(RoleName="errors-own", AssumeRolePolicyDocument=TRUST_ACCOUNT)
        session = server.client("sts").assume_role(
            RoleArn=own["Role"]["Arn"], RoleSessionName="session"
        )
        session_key = session["Credentials"]["AccessKeyId"]

        filler = _fill(tmpfs)
        # IMDS issues the instance role's first credentials now: a write that cannot fit.
        status, text = _get(
            f"{server.url}/latest/meta-data/iam/security-credentials/instance-role",
            {"X-aws-ec2-metadata-token": imds_token},
        )
        assert status == 500
        _one_line(text)
        # ecslocal's API: expiring a key is a write.
        expire = urllib.request.Request(
            f"{server.url}/_ecslocal/v1/access-keys/{session_key}/expire", method="POST"
        )
        status, text = _open(signed(expire))
        assert status == 500
        assert set(json.loads(text)) == {"message"}
        _one_line(json.loads(text)["message"])
        # The credentials endpoint rotates inside the last second of a 2 s lifetime (the lead
        # is half the lifetime): the new session cannot be stored.
        time.sleep(max(0.0, issued + 1.2 - time.time()))
        status, text = _get(uri, {"Authorization": token})
        assert status == 500, text
        body = json.loads(text)
        assert body["code"] == "InternalServerError"
        _one_line(body["message"])
        assert body != json.loads(first)
        output = "".join(server.output)
        assert "Traceback" not in output, output
    finally:
        if filler is not None:
            filler.unlink()
        server.stop()


# -- 405 on known routes, 404 elsewhere -----------------------------------------------------
def test_a_method_a_known_route_does_not_take_is_405_with_allow(server: Server) -> None:
    """RFC 9110 §15.5.6: 405 with the methods the resource takes in ``Allow``; 404 only for
    paths nothing serves (with no rest service registered to take any path)."""

    def answer(method: str, path: str, sign: bool = False) -> tuple[int, str | None]:
        request = urllib.request.Request(server.url + path, method=method)
        if sign:
            request = signed(request)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, r.headers.get("Allow")
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Allow")

    def allow(value: str | None) -> set[str]:
        return {m.strip() for m in (value or "").split(",") if m.strip()}

    for method in ("PUT", "DELETE", "PATCH"):
        status, allowed = answer(method, "/")  # the AWS API's own path
        assert status == 405 and allow(allowed) == {"GET", "HEAD", "POST"}, (method, status)
        status, allowed = answer(method, "/v2/credentials/some-id")
        assert status == 405 and allow(allowed) == {"GET", "HEAD"}, (method, status)
        status, allowed = answer(method, "/latest/meta-data/instance-id")
        assert status == 405 and allow(allowed) == {"GET", "HEAD"}, (method, status)
        status, allowed = answer(method, "/_ecslocal/v1/tasks/some-task", sign=True)
        assert status == 405 and allow(allowed) == {"GET", "HEAD"}, (method, status)
        assert answer(method, "/no/such/path")[0] == 404
    assert answer("GET", "/no/such/path")[0] == 404
    assert answer("GET", "/_ecslocal/v1/no-such-route", sign=True)[0] == 404
