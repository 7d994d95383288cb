"""The CLI's client: botocore's own ECS client pointed at the daemon, plus ecslocal's own API
(log stream, faults, OIDC tokens). The CLI speaks the same API as the aws CLI and boto3 do, and
signs ecslocal's own calls with the same key as its AWS calls: SigV4 with botocore's
``SigV4Auth``, service ``ecslocal``, the daemon's region (api/local_auth.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO, Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

from ecslocal.arns import task_id_of
from ecslocal.config import DEFAULT_ACCESS_KEY, DEFAULT_HOST
from ecslocal.errors import LocalApiError, TaskNotFound

#: The SigV4 service name of ecslocal's own API (api/local_auth.py's SIGNING_NAME).
LOCAL_SIGNING_NAME = "ecslocal"


def daemon_url(port: int, host: str = DEFAULT_HOST) -> str:
    return f"http://{host}:{port}"


def is_up(url: str, timeout: float = 0.5) -> bool:
    """The health route is the one route served unsigned."""
    try:
        with urllib.request.urlopen(f"{url}/_ecslocal/v1/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read())["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code} from the ecslocal API"


def event_line(e: dict[str, Any]) -> str:
    """One engine event (api/local_events.py) as a line: time, task, version, what changed."""
    kind, what = e["type"], e.get("lastStatus") or e.get("healthStatus") or ""
    if kind == "TaskStateChanged":
        what = f"task {what} (desired {e['desiredStatus']})" + "".join(
            f" {k}={e[k]!r}" for k in ("stopCode", "stoppedReason") if k in e
        )
    elif kind == "ContainerStateChanged":
        exit_code = f" exitCode={e['exitCode']}" if "exitCode" in e else ""
        what = f"container {e['name']} {what}{exit_code}" + (
            f" reason={e['reason']!r}" if "reason" in e else ""
        )
    elif kind == "ContainerHealthChanged":
        what = f"container {e['name']} health {what}"
    elif kind == "TaskHealthChanged":
        what = f"task health {what}"
    else:
        return f"{kind}: {e.get('message', '')}"
    return f"{e['updatedAt']} {e['taskId'][:12]} v{e['version']} {what}"


class Client:
    def __init__(self, url: str, region: str, key: tuple[str, str] = DEFAULT_ACCESS_KEY) -> None:
        self.url = url
        self.signer = SigV4Auth(Credentials(*key), LOCAL_SIGNING_NAME, region)
        session = botocore.session.get_session()
        self.ecs = session.create_client(
            "ecs",
            endpoint_url=url,
            region_name=region,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            # The daemon validates (and answers with ECS's errors); don't pre-empt it here.
            config=BotoConfig(parameter_validation=False, retries={"max_attempts": 2}),
        )

    def task_ids(self, cluster: str, include_stopped: bool = True) -> list[str]:
        arns: list[str] = []
        statuses = ("RUNNING", "STOPPED") if include_stopped else ("RUNNING",)
        paginator = self.ecs.get_paginator("list_tasks")
        for status in statuses:
            for page in paginator.paginate(cluster=cluster, desiredStatus=status):
                arns.extend(page["taskArns"])
        return arns

    def resolve_task(self, ref: str, cluster: str) -> str:
        """A task ARN from an ARN, an id, or a unique id prefix."""
        if ref.startswith("arn:"):
            return ref
        matches = [a for a in self.task_ids(cluster) if task_id_of(a).startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise TaskNotFound(f"no task matches {ref!r} in cluster {cluster!r}")
        raise TaskNotFound(f"{ref!r} matches {len(matches)} tasks; give more of the id")

    def describe(self, task_arn: str, cluster: str) -> dict[str, Any]:
        tasks = self.ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
        if not tasks:
            raise TaskNotFound(f"task {task_arn} not found")
        return tasks[0]

    def _open(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = 30
    ) -> IO[bytes]:
        """A signed call of ecslocal's own API; raises :class:`LocalApiError` on a refusal."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        signed = AWSRequest(method=method, url=f"{self.url}{path}", data=body, headers=headers)
        self.signer.add_auth(signed)
        request = urllib.request.Request(
            signed.url, data=body, headers=dict(signed.headers.items()), method=method
        )
        try:
            return urllib.request.urlopen(request, timeout=timeout)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as error:
            raise LocalApiError(error.code, _message(error)) from None

    def task_extras(self, task_id: str) -> dict[str, Any]:
        with self._open("GET", f"/_ecslocal/v1/tasks/{task_id}") as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def logs(
        self, task_id: str, follow: bool = False, container: str | None = None, after: int = 0
    ) -> Iterator[dict[str, Any]]:
        query = {"after": str(after), "follow": "1" if follow else "0"}
        if container:
            query["container"] = container
        path = f"/_ecslocal/v1/tasks/{task_id}/logs?{urllib.parse.urlencode(query)}"
        with self._open("GET", path, timeout=None) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)

    def events(
        self, task_id: str | None = None, until: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The engine's events as they happen (api/local_events.py): one task's from its start,
        or every task's from now on; until the client stops reading, or ``until`` a status."""
        query = {k: v for k, v in (("task", task_id), ("until", until)) if v}
        path = "/_ecslocal/v1/events" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with self._open("GET", path, timeout=None) as response:
            for line in response:
                if line.strip():  # empty lines are the stream's heartbeats
                    yield json.loads(line)

    def oidc_token(self, subject: str, audience: str, ttl: int) -> dict[str, Any]:
        """A JWT from the daemon's local OIDC issuer (for AssumeRoleWithWebIdentity)."""
        body = json.dumps({"sub": subject, "aud": audience, "ttl": ttl}).encode()
        with self._open("POST", "/_ecslocal/v1/oidc/token", body) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def local(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call one of the daemon's own endpoints (``/_ecslocal/v1/...``); (status, JSON).
        A refused signature raises :class:`LocalApiError` (the CLI prints its message)."""
        data = json.dumps(body).encode() if body is not None else None
        try:
            with self._open(method, path, data) as response:
                return response.status, json.loads(response.read())
        except LocalApiError as error:
            if error.status in (401, 403):
                raise
            return error.status, {"message": error.message}
