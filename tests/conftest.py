"""Fixtures: a real `ecslocal serve` on loopback, driven by real clients (boto3, the CLI)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests import registry_clients
from tests.token_server import token_server

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"ready on (http://127\.0\.0\.1:(\d+))")


class Server:
    """One `ecslocal serve` process with its own data directory."""

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        default_cluster: bool = True,
        region: str = "us-east-1",
    ) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.region = region  # the daemon's (ECSLOCAL_REGION) and its clients'
        #: ECS creates no cluster for an account (a fresh account's ListClusters is empty);
        #: the tests that run tasks without naming a cluster get ``default`` created here, as
        #: the console's first run creates it. ``default_cluster=False``: a fresh account.
        self.default_cluster = default_cluster
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0
        self.output: list[str] = []

    def start(self, port: int = 0) -> Server:
        env = {
            **os.environ,
            "ECSLOCAL_DATA_DIR": str(self.data_dir),
            "ECSLOCAL_REGION": self.region,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecslocal", "serve", "--port", str(port), *self.extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("ecslocal serve exited:\n" + "".join(self.output))
            self.output.append(line)
            m = READY.search(line)
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                break
        else:
            raise RuntimeError("ecslocal serve did not become ready")
        # Keep draining its output so it never blocks on a full pipe.
        import threading

        threading.Thread(target=self._drain, daemon=True).start()
        if self.default_cluster and "--no-default-key" not in self.extra:
            self.ecs().create_cluster(clusterName="default")  # idempotent on a restart
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_output(self, text: str, timeout: float = 30) -> str:
        """The first line of the daemon's output containing ``text``, waited for: lines printed
        after "ready on" reach :attr:`output` through the drain thread, some time later."""
        deadline = time.monotonic() + timeout
        while True:
            line = next((line for line in list(self.output) if text in line), None)
            if line is not None:
                return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r} in {self.output}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def ecs(self, client_validation: bool = True) -> Any:
        return self.client("ecs", client_validation)

    def client(
        self,
        service: str,
        client_validation: bool = True,
        key: tuple[str, str] = ("test", "test"),
        token: str | None = None,
        config: Any = None,
    ) -> Any:
        """A boto3 client for ``service`` against this server (signed with ``key``)."""
        from botocore.config import Config

        base = Config(parameter_validation=client_validation)

        return boto3.client(
            service,
            aws_session_token=token,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=base.merge(config) if config is not None else base,
        )

    def cli(self, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ecslocal", "--port", str(self.port), *args],
            cwd=kw.pop("cwd", ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "ECSLOCAL_DATA_DIR": str(self.data_dir)},
            **kw,
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("ecslocal-data")).start()
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data")
    yield s
    s.stop()


@pytest.fixture
def ecs(server: Server) -> Any:
    return server.ecs()


# -- registries and real registry clients (tests/registry_clients.py) ------------------------
@pytest.fixture(params=["open", "basic-auth", "bearer-token"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[registry_clients.Registry]:
    """Debian's docker-registry on loopback: without auth, with htpasswd Basic auth, and with
    Docker Hub-style Bearer tokens from tests/token_server.py."""
    root, password = tmp_path / "registry", uuid.uuid4().hex
    if request.param == "bearer-token":
        with (
            token_server("tester", password) as tokens,
            registry_clients.docker_registry(root, token=tokens) as r,
        ):
            yield r
        return
    user = "tester" if request.param == "basic-auth" else None
    with registry_clients.docker_registry(root, user, password if user else None) as r:
        yield r


@pytest.fixture(scope="module")
def dockerd() -> Iterator[registry_clients.Docker]:
    with registry_clients.dockerd() as daemon:
        yield daemon


@pytest.fixture
def podman() -> Iterator[registry_clients.Podman]:
    with registry_clients.podman() as client:
        yield client


def container(name: str, command: str, **fields: Any) -> dict[str, Any]:
    """A container definition running ``command`` through sh."""
    return {
        "name": name,
        "image": "busybox",
        "command": ["sh", "-c", command],
        "memory": fields.pop("memory", 64),
        **fields,
    }


def taskdef(family: str, *containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"family": family, "containerDefinitions": list(containers), **fields}


def run_task(ecs: Any, definition: dict[str, Any], **params: Any) -> str:
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    return ecs.run_task(taskDefinition=arn, **params)["tasks"][0]["taskArn"]


def wait_for(ecs: Any, task_arn: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    """Poll DescribeTasks until ``predicate(task)`` holds; return the task."""
    deadline = time.monotonic() + timeout
    while True:
        task = ecs.describe_tasks(tasks=[task_arn])["tasks"][0]
        if predicate(task):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; task is now {json.dumps(task, default=str)}")
        time.sleep(0.1)


def wait_until(predicate: Any, timeout: float = 30, what: str = "the condition") -> Any:
    """Poll ``predicate()`` until it returns something true; return that. The deadline is
    generous: it bounds a hang, it is not a claim about speed (tests run on busy machines)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def read_pids(path: Path, count: int) -> list[int]:
    """The pids a task's shell wrote to ``path``, one a line, once ``count`` are there."""

    def ready() -> list[int] | None:
        try:
            pids = [int(p) for p in path.read_text().split()]
        except (FileNotFoundError, ValueError):  # not written yet, or a line half-written
            return None
        return pids if len(pids) >= count else None

    return list(wait_until(ready, what=f"{count} pid(s) in {path}"))


def wait_stopped(ecs: Any, task_arn: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(ecs, task_arn, lambda t: t["lastStatus"] == "STOPPED", timeout)


def by_name(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in task["containers"]}


def signed(
    request: str | urllib.request.Request,
    key: tuple[str, str] = ("test", "test"),
    token: str | None = None,
    region: str = "us-east-1",
) -> urllib.request.Request:
    """``request`` (a URL or a urllib Request) to ecslocal's own API, SigV4-signed by
    botocore's SigV4Auth for the service ``ecslocal`` (the local API takes nothing else)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if isinstance(request, str):
        request = urllib.request.Request(request)
    aws = AWSRequest(
        method=request.get_method(),
        url=request.full_url,
        data=request.data,
        headers=dict(request.header_items()),
    )
    SigV4Auth(Credentials(key[0], key[1], token), "ecslocal", region).add_auth(aws)
    for name, value in aws.headers.items():
        request.add_header(name, value)
    return request


def task_logs(server: Server, task_arn: str) -> list[dict[str, Any]]:
    task_id = task_arn.rsplit("/", 1)[-1]
    with urllib.request.urlopen(signed(f"{server.url}/_ecslocal/v1/tasks/{task_id}/logs")) as r:
        return [json.loads(line) for line in r if line.strip()]


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone between the two looks (ESRCH)
        return False


ECS_TASKS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def ecs_task_role(server: Server, name: str, trust: str = ECS_TASKS_TRUST) -> str:
    """The ARN of IAM role ``name`` (created if missing) that ECS tasks may assume."""
    iam = server.client("iam")
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"])


def python_container(script: str, *args: str, memory: int = 256, **fields: Any) -> dict[str, Any]:
    """A container definition ``app`` running ``script`` with this interpreter (``-c``)."""
    return {
        "name": "app",
        "image": "python",
        "memory": memory,
        "command": [sys.executable, "-c", script, *args],
        **fields,
    }


def run_to_end(
    server: Server,
    family: str,
    *containers: dict[str, Any],
    role: bool = False,
    timeout: float = 60,
    **params: Any,
) -> tuple[dict[str, Any], list[str]]:
    """Run a task of ``containers`` (with a task role named ``family`` if ``role``) until it
    stops; the stopped task and every line its containers wrote. ``params`` go to RunTask."""
    ecs = server.ecs()
    fields = {"taskRoleArn": ecs_task_role(server, family)} if role else {}
    arn = run_task(ecs, taskdef(family, *containers, **fields), **params)
    task = wait_stopped(ecs, arn, timeout)
    return task, [e["message"] for e in task_logs(server, arn)]


@contextmanager
def read_only_data_dir(data: Path) -> Iterator[None]:
    """``data`` (a stopped daemon's data dir) read-only while the block runs: root writes
    through file modes, so as root a read-only bind mount of it; otherwise file modes."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(data)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(data)], check=False)
        return
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (data / name).exists():
            (data / name).chmod(0o400)
    data.chmod(0o500)
    try:
        yield
    finally:
        data.chmod(0o700)


def marked(name: str, command: str, **fields: Any) -> tuple[dict[str, Any], str]:
    """A container running ``command`` with a unique ``ECSLOCAL_TEST_MARK`` in its environment,
    and that ``NAME=value``: :func:`host_pids` finds its processes on the host by it (``$$``
    inside a container is a pid of its own PID namespace)."""
    value = str(uuid.uuid4())
    env = [{"name": "ECSLOCAL_TEST_MARK", "value": value}, *fields.pop("environment", [])]
    return container(name, command, environment=env, **fields), f"ECSLOCAL_TEST_MARK={value}"


#: A trust policy that lets the account's own principals assume a role (sts:AssumeRole).
TRUST_ACCOUNT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def host_pids(marker: str) -> dict[int, int]:
    """``{pid as its container sees it: host pid}`` for every live process whose environment
    holds ``marker`` (a ``NAME=value`` a test put in the container's environment).

    Containers run in PID namespaces of their own (as on Fargate), so ``echo $$`` inside one is
    not a host pid; the last field of ``NSpid`` in /proc/PID/status is the innermost one."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker.encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        found[int(line.split()[-1])] = int(entry)
        except (OSError, ValueError):
            continue
    return {ns: pid for ns, pid in found.items() if process_alive(pid)}
