"""`refuse` faults refuse, as the AWS SDK for Go v2 meets them (issue 9, item 13).

Seed 002's app, on the Go SDK v2, fails in the cloud with ``dial tcp …: connect: connection
refused`` when STS is not reachable yet; a connection accepted and dropped is ``EOF`` to it
instead. tests/go/main.go is that app in small (container credentials provider, STS
GetCallerIdentity in a loop, one line per call), built offline from Debian's packages
(``golang-go``, ``golang-github-aws-aws-sdk-go-v2-dev``: Go 1.19, SDK 1.17.1) in GOPATH mode,
once per session, and run inside tasks by the process backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, ecs_task_role, run_task, taskdef, wait_stopped
from tests.test_faults import _post, refuse_one_task, wait_call

GO_SOURCE = Path(__file__).resolve().parent / "go" / "main.go"
GOPATH = Path("/usr/share/gocode")
SDK = GOPATH / "src/github.com/aws/aws-sdk-go-v2/service/sts"


@pytest.fixture(scope="session")
def go_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs Go (Debian's golang-go; .ci/run installs it)")
    if not SDK.is_dir():
        pytest.skip(
            f"needs the AWS SDK for Go v2 in {GOPATH} (Debian's"
            " golang-github-aws-aws-sdk-go-v2-dev; .ci/run installs it)"
        )
    out = tmp_path_factory.mktemp("go")
    binary = out / "stscaller"
    env = {
        **os.environ,
        # Debian packages Go libraries as GOPATH sources: build in GOPATH mode, offline.
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "cache"),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SOURCE)],
        cwd=GO_SOURCE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    yield str(binary)


def _app(name: str, binary: str) -> dict[str, object]:
    return {"name": name, "image": "golang", "memory": 256, "command": [binary]}


def test_go_sdk_meets_connection_refused_from_sts_scoped_to_one_task(
    server: Server, go_app: str
) -> None:
    """A refuse fault on STS for task A: A's Go SDK says ``connect: connection refused`` (not
    ``EOF``); task B, started during the fault, reaches STS; A does again once cleared."""
    role = ecs_task_role(server, "refuse-go")
    refused, first_of_b = refuse_one_task(server, "sts", _app("refuse-go", go_app), role)
    assert "dial tcp 127.0.0.1:" in refused and "connect: connection refused" in refused, refused
    assert "EOF" not in refused, refused
    assert first_of_b.startswith("arn: arn:aws:sts::000000000000:assumed-role/refuse-go/"), (
        first_of_b
    )


def test_a_task_started_while_sts_refuses_everyone_is_refused_until_cleared(
    server: Server, go_app: str
) -> None:
    """A task's listeners are born refusing while a refuse fault covers every task."""
    ecs = server.ecs()
    role = ecs_task_role(server, "refuse-go-all")
    status, fault = _post(server, {"target": "sts", "kind": "refuse", "durationSeconds": 300})
    assert status == 201, fault
    arn = None
    try:
        definition = taskdef("refuse-go-all", _app("app", go_app), taskRoleArn=role)
        arn = run_task(ecs, definition)
        n, first = wait_call(server, arn, ok=None)
        assert "connect: connection refused" in first, first
        assert server.cli("fault", "clear", fault["id"]).stdout.strip() == "cleared 1"
        _, ok = wait_call(server, arn, ok=True, after=n)
        assert ok.startswith("arn: arn:aws:sts::000000000000:assumed-role/refuse-go-all/"), ok
    finally:
        server.cli("fault", "clear")
        if arn is not None:
            ecs.stop_task(task=arn)
            wait_stopped(ecs, arn)
