"""The CLI's client: botocore's own ECS client pointed at the daemon, plus ecslocal's log
stream. The CLI speaks the same API as the aws CLI and boto3 do."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import botocore.session
from botocore.config import Config as BotoConfig

from ecslocal.config import DEFAULT_HOST
from ecslocal.errors import TaskNotFound


def daemon_url(port: int, host: str = DEFAULT_HOST) -> str:
    return f"http://{host}:{port}"


def is_up(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_ecslocal/v1/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False




class Client:
    def __init__(self, url: str, region: str) -> None:
        self.url = url
        session = botocore.session.get_session()
        self.ecs = session.create_client(
            "ecs",
            endpoint_url=url,
            region_name=region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
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
        matches = [a for a in self.task_ids(cluster) if a.rsplit("/", 1)[-1].startswith(ref)]
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

    def task_extras(self, task_id: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_ecslocal/v1/tasks/{task_id}") as r:
            return json.loads(r.read())

    def logs(
        self, task_id: str, follow: bool = False, container: str | None = None, after: int = 0
    ) -> Iterator[dict[str, Any]]:
        query = {"after": str(after), "follow": "1" if follow else "0"}
        if container:
            query["container"] = container
        url = f"{self.url}/_ecslocal/v1/tasks/{task_id}/logs?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=None) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)

    def oidc_token(self, subject: str, audience: str, ttl: int) -> dict[str, Any]:
        """A JWT from the daemon's local OIDC issuer (for AssumeRoleWithWebIdentity)."""
        body = json.dumps({"sub": subject, "aud": audience, "ttl": ttl}).encode()
        request = urllib.request.Request(
            f"{self.url}/_ecslocal/v1/oidc/token", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def local(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call one of the daemon's own endpoints (``/_ecslocal/v1/...``); (status, JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

