"""Log capture: every line, timestamped, under the task; awslogs group and stream names."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server, container, run_task, task_logs, taskdef, wait_stopped


def _awslogs(group: str, prefix: str | None) -> dict[str, Any]:
    options = {"awslogs-group": group, "awslogs-region": "us-east-1"}
    if prefix:
        options["awslogs-stream-prefix"] = prefix
    return {"logDriver": "awslogs", "options": options}


def test_awslogs_stream_is_prefix_container_task_id(ecs: Any, server: Server) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "logs-aws",
            container(
                "web",
                "echo out-line; echo err-line >&2",
                logConfiguration=_awslogs("/ecs/logs-aws", "svc"),
            ),
        ),
    )
    wait_stopped(ecs, arn)
    task_id = arn.rsplit("/", 1)[-1]
    events = task_logs(server, arn)
    assert {(e["source"], e["message"]) for e in events} == {
        ("stdout", "out-line"),
        ("stderr", "err-line"),
    }
    for e in events:
        assert e["logGroup"] == "/ecs/logs-aws"
        assert e["logStream"] == f"svc/web/{task_id}"
        assert e["timestamp"] > 1_700_000_000_000  # epoch milliseconds


def test_awslogs_without_prefix_uses_runtime_id(ecs: Any, server: Server) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "logs-noprefix", container("web", "echo x", logConfiguration=_awslogs("/ecs/np", None))
        ),
    )
    task = wait_stopped(ecs, arn)
    [event] = task_logs(server, arn)
    assert event["logStream"] == task["containers"][0]["runtimeId"]


def test_logs_without_awslogs_are_kept_under_the_task(ecs: Any, server: Server) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "logs-plain",
            container("a", "for i in 1 2 3; do echo a$i; done"),
            container("b", "echo b1; sleep 0.2", essential=False),
        ),
    )
    wait_stopped(ecs, arn)
    events = task_logs(server, arn)
    assert [e["message"] for e in events if e["container"] == "a"] == ["a1", "a2", "a3"]
    assert all(e["logGroup"] is None for e in events)


def test_partial_last_line_and_long_lines(ecs: Any, server: Server) -> None:
    arn = run_task(
        ecs,
        taskdef(
            "logs-edge",
            container("a", "printf 'no-newline-at-end'; head -c 40000 /dev/zero | tr '\\0' x >&2"),
        ),
    )
    wait_stopped(ecs, arn)
    events = task_logs(server, arn)
    assert "no-newline-at-end" in [e["message"] for e in events]
    long_parts = [e["message"] for e in events if e["source"] == "stderr"]
    assert [len(p) for p in long_parts] == [16384, 16384, 40000 - 2 * 16384]
