"""The shipped examples run as the README says."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from tests.conftest import ROOT, Server, by_name, wait_for, wait_stopped


def test_web_example_app_waits_for_healthy_sidecar(server: Server, ecs: Any) -> None:
    definition = json.loads((ROOT / "examples/web/taskdef.json").read_text())
    result = server.cli("run", "-d", "examples/web/taskdef.json")
    assert result.returncode == 0, result.stderr
    arn = result.stdout.strip()
    task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    assert by_name(task)["app"]["lastStatus"] == "PENDING"  # waits for the sidecar's health
    task = wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING", timeout=30)
    assert by_name(task)["config-sidecar"]["healthStatus"] == "HEALTHY"
    assert task["launchType"] == "FARGATE" and task["cpu"] == definition["cpu"]
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=2) as r:
                body = json.loads(r.read())
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert body["greeting"] == "hello from the sidecar"
    ecs.stop_task(task=arn)
    c = by_name(wait_stopped(ecs, arn))
    assert c["app"]["exitCode"] == 0  # its SIGTERM handler ran
    assert c["config-sidecar"]["exitCode"] == 143
