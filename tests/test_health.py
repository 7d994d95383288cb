"""Container health checks: UNKNOWN -> HEALTHY -> UNHEALTHY, and the task's healthStatus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import (
    by_name,
    container,
    run_task,
    taskdef,
    wait_for,
    wait_stopped,
    wait_until,
)


def test_health_transitions_and_task_health(ecs: Any, tmp_path: Path) -> None:
    flag = tmp_path / "healthy"
    check = {"command": ["CMD-SHELL", f"test -f {flag}"], "interval": 5, "retries": 1, "timeout": 2}
    arn = run_task(
        ecs,
        taskdef(
            "hc-transitions",
            container("web", "sleep 60", healthCheck=check, stopTimeout=2),
            # A non-essential container's health does not count toward the task's.
            container(
                "extra",
                "sleep 60",
                essential=False,
                stopTimeout=2,
                healthCheck={"command": ["CMD", "false"], "interval": 5, "retries": 1},
            ),
        ),
    )
    task = wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    assert by_name(task)["web"]["healthStatus"] == "UNKNOWN"
    assert task["healthStatus"] == "UNKNOWN"
    flag.touch()
    # Both containers' first checks run about together: wait for both results, in any order.
    task = wait_for(
        ecs,
        arn,
        lambda t: (
            by_name(t)["web"]["healthStatus"] == "HEALTHY"
            and by_name(t)["extra"]["healthStatus"] == "UNHEALTHY"
        ),
        30,
    )
    assert task["healthStatus"] == "HEALTHY"
    flag.unlink()
    task = wait_for(ecs, arn, lambda t: by_name(t)["web"]["healthStatus"] == "UNHEALTHY", 30)
    assert task["healthStatus"] == "UNHEALTHY"
    # A standalone task keeps running when unhealthy (only services replace unhealthy tasks).
    assert task["lastStatus"] == "RUNNING"
    ecs.stop_task(task=arn)
    wait_stopped(ecs, arn)


def test_health_check_timeout_counts_as_failure(ecs: Any) -> None:
    check = {"command": ["CMD-SHELL", "sleep 10"], "interval": 5, "timeout": 2, "retries": 1}
    arn = run_task(
        ecs, taskdef("hc-timeout", container("web", "sleep 60", healthCheck=check, stopTimeout=2))
    )
    task = wait_for(ecs, arn, lambda t: by_name(t)["web"]["healthStatus"] == "UNHEALTHY", 30)
    assert task["healthStatus"] == "UNHEALTHY"
    ecs.stop_task(task=arn)
    wait_stopped(ecs, arn)


def test_start_period_failures_do_not_count(ecs: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Each check says it ran, then fails. Checks run one after another, so once the second
    # has started the first one's failure has been counted (or not): no fixed sleep that a
    # busy machine could outrun, leaving the assertion nothing to check.
    check = {
        "command": ["CMD-SHELL", f"echo ran >> {runs}; false"],
        "interval": 5,
        "retries": 1,
        "startPeriod": 60,
    }
    arn = run_task(
        ecs, taskdef("hc-grace", container("web", "sleep 60", healthCheck=check, stopTimeout=2))
    )
    wait_until(
        lambda: runs.exists() and len(runs.read_text().split()) >= 2,
        timeout=60,
        what="two health checks to have run",
    )
    task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    assert by_name(task)["web"]["healthStatus"] == "UNKNOWN"
    ecs.stop_task(task=arn)
    wait_stopped(ecs, arn)


def test_command_without_cmd_prefix_runs_no_check(ecs: Any, tmp_path: Path) -> None:
    """The agent passes healthCheck.command to Docker as Healthcheck.Test unchanged
    (agent/api/task/task.go decodes the raw Docker config ECS sends); Docker runs no probe for
    a Test whose first element is neither CMD nor CMD-SHELL ("Unknown healthcheck type",
    getProbe in moby daemon/health.go), and the agent does not report the "starting" health
    that leaves, so healthStatus stays UNKNOWN. A sibling container with a CMD-SHELL check,
    started after it (dependsOn START) with twice the interval, turning HEALTHY shows that
    the unprefixed check's time has come and gone."""
    never = tmp_path / "never"
    ran = tmp_path / "ran"
    arn = run_task(
        ecs,
        taskdef(
            "hc-noprefix",
            container(
                "bare",
                "sleep 60",
                stopTimeout=2,
                healthCheck={"command": ["sh", "-c", f"touch {never}"], "interval": 5},
            ),
            container(
                "probe",
                "sleep 60",
                stopTimeout=2,
                essential=False,
                dependsOn=[{"containerName": "bare", "condition": "START"}],
                healthCheck={"command": ["CMD-SHELL", f"touch {ran}"], "interval": 10},
            ),
        ),
    )
    task = wait_for(ecs, arn, lambda t: by_name(t)["probe"]["healthStatus"] == "HEALTHY", 30)
    assert ran.exists()
    assert not never.exists()
    assert by_name(task)["bare"]["healthStatus"] == "UNKNOWN"
    assert task["healthStatus"] == "UNKNOWN"
    ecs.stop_task(task=arn)
    wait_stopped(ecs, arn)
