"""Task lifecycle through the real daemon and boto3: dependsOn, essential containers, timestamps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import by_name, container, run_task, taskdef, wait_for, wait_stopped


def test_single_container_runs_to_stopped_with_timestamps(ecs: Any) -> None:
    arn = run_task(ecs, taskdef("lc-basic", container("main", "echo hi; exit 0")))
    task = wait_stopped(ecs, arn)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    for field in (
        "createdAt",
        "pullStartedAt",
        "pullStoppedAt",
        "startedAt",
        "stoppingAt",
        "executionStoppedAt",
        "stoppedAt",
    ):
        assert field in task, field
    assert task["createdAt"] <= task["startedAt"] <= task["stoppingAt"] <= task["stoppedAt"]
    c = task["containers"][0]
    assert c["lastStatus"] == "STOPPED" and c["exitCode"] == 0
    assert task["taskArn"].startswith("arn:aws:ecs:us-east-1:000000000000:task/default/")
    assert len(task["taskArn"].rsplit("/", 1)[-1]) == 32


def test_run_task_returns_provisioning_then_running(ecs: Any) -> None:
    arn_td = ecs.register_task_definition(
        **taskdef("lc-states", container("main", "sleep 30", stopTimeout=2))
    )["taskDefinition"]["taskDefinitionArn"]
    task = ecs.run_task(taskDefinition=arn_td)["tasks"][0]
    assert task["lastStatus"] == "PROVISIONING" and task["desiredStatus"] == "RUNNING"
    running = wait_for(ecs, task["taskArn"], lambda t: t["lastStatus"] == "RUNNING")
    assert by_name(running)["main"]["lastStatus"] == "RUNNING"
    ecs.stop_task(task=task["taskArn"], reason="test over")
    stopped = wait_stopped(ecs, task["taskArn"])
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "test over"
    assert by_name(stopped)["main"]["exitCode"] == 143  # sh killed by SIGTERM: 128 + 15


def test_essential_exit_stops_other_containers(ecs: Any) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "lc-essential",
            container("worker", "sleep 1; exit 7"),
            container("sidecar", "sleep 60", essential=False, stopTimeout=2),
        ),
    )
    task = wait_stopped(ecs, arn)
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    c = by_name(task)
    assert c["worker"]["exitCode"] == 7
    assert c["sidecar"]["exitCode"] == 143


def test_non_essential_exit_keeps_task_running(ecs: Any) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "lc-nonessential",
            container("init", "exit 0", essential=False),
            container("main", "sleep 30", stopTimeout=2),
        ),
    )
    task = wait_for(ecs, arn, lambda t: by_name(t)["init"]["lastStatus"] == "STOPPED")
    assert task["lastStatus"] == "RUNNING" and task["desiredStatus"] == "RUNNING"
    ecs.stop_task(task=arn)
    assert wait_stopped(ecs, arn)["stoppedReason"] == "Task stopped by user"


def test_depends_on_start_waits_for_dependency_to_start(ecs: Any) -> None:
    # db can't start (no such executable): app, which needs db STARTed, never starts.
    arn = run_task(
        ecs,
        taskdef(
            "lc-start-fail",
            {"name": "db", "image": "busybox", "command": ["no-such-binary-xyz"], "memory": 64},
            container(
                "app", "echo app-ran", dependsOn=[{"containerName": "db", "condition": "START"}]
            ),
        ),
    )
    task = wait_stopped(ecs, arn)
    c = by_name(task)
    assert task["stopCode"] == "TaskFailedToStart"
    assert c["db"]["reason"].startswith("CannotStartContainerError:")
    assert 'exec: "no-such-binary-xyz": executable file not found in $PATH' in c["db"]["reason"]
    assert "exitCode" not in c["app"] and c["app"]["lastStatus"] == "STOPPED"


def test_depends_on_complete_runs_after_any_exit(ecs: Any, tmp_path: Path) -> None:
    marker = tmp_path / "init-done"
    arn = run_task(
        ecs,
        taskdef(
            "lc-complete",
            container("init", f"sleep 0.5; echo done > {marker}; exit 3", essential=False),
            container(
                "app",
                f"cat {marker}",
                dependsOn=[{"containerName": "init", "condition": "COMPLETE"}],
            ),
        ),
    )
    task = wait_stopped(ecs, arn)
    c = by_name(task)
    assert c["init"]["exitCode"] == 3
    assert c["app"]["exitCode"] == 0  # the marker existed when app started
    assert task["stopCode"] == "EssentialContainerExited"


def test_depends_on_success_runs_after_zero_exit(ecs: Any, tmp_path: Path) -> None:
    marker = tmp_path / "migrated"
    arn = run_task(
        ecs,
        taskdef(
            "lc-success",
            container("migrate", f"sleep 0.5; touch {marker}", essential=False),
            container(
                "app",
                f"test -f {marker}",
                dependsOn=[{"containerName": "migrate", "condition": "SUCCESS"}],
            ),
        ),
    )
    c = by_name(wait_stopped(ecs, arn))
    assert c["migrate"]["exitCode"] == 0 and c["app"]["exitCode"] == 0


def test_depends_on_success_nonzero_fails_task(ecs: Any) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "lc-success-fail",
            container("migrate", "exit 2", essential=False),
            container(
                "app",
                "echo should-not-run",
                dependsOn=[{"containerName": "migrate", "condition": "SUCCESS"}],
            ),
        ),
    )
    task = wait_stopped(ecs, arn)
    c = by_name(task)
    assert task["stopCode"] == "TaskFailedToStart"
    assert c["migrate"]["exitCode"] == 2
    assert "exitCode" not in c["app"]
    assert "did not exit successfully" in c["app"]["reason"]


def test_depends_on_healthy_waits_for_health(ecs: Any, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    arn = run_task(
        ecs,
        taskdef(
            "lc-healthy",
            container(
                "db",
                f"sleep 1; touch {ready}; sleep 60",
                stopTimeout=2,
                healthCheck={
                    "command": ["CMD-SHELL", f"test -f {ready}"],
                    "interval": 5,
                    "retries": 1,
                },
            ),
            container(
                "app",
                f"test -f {ready} && echo saw-ready",
                dependsOn=[{"containerName": "db", "condition": "HEALTHY"}],
            ),
        ),
    )
    pending = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    assert by_name(pending)["app"]["lastStatus"] == "PENDING"
    task = wait_stopped(ecs, arn, timeout=30)
    c = by_name(task)
    assert c["db"]["healthStatus"] == "HEALTHY"
    assert c["app"]["exitCode"] == 0


def test_depends_on_start_timeout_stops_task(ecs: Any) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "lc-timeout",
            container(
                "db",
                "sleep 60",
                startTimeout=2,
                stopTimeout=2,
                healthCheck={"command": ["CMD-SHELL", "exit 1"], "interval": 5},
            ),
            container(
                "app", "echo never", dependsOn=[{"containerName": "db", "condition": "HEALTHY"}]
            ),
        ),
    )
    task = wait_stopped(ecs, arn, timeout=20)
    assert task["stopCode"] == "TaskFailedToStart"
    c = by_name(task)
    assert "timed out" in c["app"]["reason"]
    assert "exitCode" not in c["app"]
    # The timeout fired at startTimeout (2 s), well before the first health check (5 s).
    assert (task["stoppingAt"] - task["createdAt"]).total_seconds() < 4.5


def test_stop_in_reverse_dependency_order(ecs: Any, tmp_path: Path) -> None:
    alive = tmp_path / "app-alive"
    verdict = tmp_path / "verdict"
    db = container(
        "db",
        f"trap 'if [ -e {alive} ]; then echo app-still-up > {verdict}; "
        f"else echo app-gone > {verdict}; fi; exit 0' TERM; while true; do sleep 0.1; done",
        stopTimeout=5,
    )
    app = container(
        "app",
        f"touch {alive}; trap 'rm -f {alive}; exit 0' TERM; while true; do sleep 0.1; done",
        stopTimeout=5,
        dependsOn=[{"containerName": "db", "condition": "START"}],
    )
    arn = run_task(ecs, taskdef("lc-order", db, app))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    wait_for(ecs, arn, lambda t: alive.exists())
    ecs.stop_task(task=arn)
    task = wait_stopped(ecs, arn)
    assert verdict.read_text().strip() == "app-gone"
    assert {c["exitCode"] for c in task["containers"]} == {0}
