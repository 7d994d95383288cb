"""The CLI end to end: run (with and without a daemon), ps, logs, describe, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, Server, container, read_only_data_dir, taskdef


def _write(tmp_path: Path, definition: dict) -> str:
    path = tmp_path / f"{definition['family']}.json"
    path.write_text(json.dumps(definition))
    return str(path)


def test_run_hello_example_without_a_daemon(tmp_path: Path) -> None:
    # No daemon on this port: `run` starts one in-process.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecslocal",
            "--port",
            "1",
            "run",
            "examples/hello/taskdef.json",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "hello | Hello from ECS task on AWS_ECS_FARGATE in us-east-1" in result.stdout


def test_run_exits_with_the_essential_containers_code(server: Server, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        taskdef(
            "cli-exit",
            container("main", "echo working; exit 3"),
            container("side", "sleep 30", essential=False, stopTimeout=2),
        ),
    )
    result = server.cli("run", path)
    assert result.returncode == 3
    assert "main | working" in result.stdout
    assert "main exited with code 3" in result.stderr


def test_run_env_and_environment_files(server: Server, tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("# comment\nFROM_FILE=file\nBOTH=file\n")
    path = _write(
        tmp_path,
        taskdef(
            "cli-env",
            container(
                "main",
                "echo $FROM_FILE $BOTH $FROM_CLI $AWS_REGION $AWS_EXECUTION_ENV",
                environment=[{"name": "BOTH", "value": "environment"}],
                environmentFiles=[{"value": "app.env", "type": "s3"}],
            ),
        ),
    )
    result = server.cli("run", path, "--env", "FROM_CLI=cli")
    assert result.returncode == 0, result.stderr
    assert "main | file environment cli us-east-1 AWS_ECS_EC2" in result.stdout


def test_run_command_that_cannot_start(server: Server, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        taskdef(
            "cli-nostart",
            {"name": "main", "image": "busybox", "command": ["/no/such/program"], "memory": 64},
        ),
    )
    result = server.cli("run", path)
    assert result.returncode == 125
    assert "CannotStartContainerError" in result.stderr
    assert "stat /no/such/program: no such file or directory" in result.stderr


def test_ps_logs_describe_stop(server: Server, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        taskdef(
            "cli-ps", container("main", "echo line-one; echo line-two; sleep 300", stopTimeout=2)
        ),
    )
    started = server.cli("run", "--detach", path)
    assert started.returncode == 0, started.stderr
    arn = started.stdout.strip()
    task_id = arn.rsplit("/", 1)[-1]
    deadline = time.monotonic() + 10
    while "line-two" not in server.cli("logs", task_id[:10]).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ps = server.cli("ps")
    assert task_id in ps.stdout and "cli-ps:" in ps.stdout
    described = json.loads(server.cli("describe", task_id[:8]).stdout)
    assert described["taskArn"] == arn and described["lastStatus"] == "RUNNING"
    logs = server.cli("logs", task_id, "--container", "main")
    assert "main | line-one" in logs.stdout
    stopped = server.cli("stop", task_id, "--reason", "done here")
    assert stopped.returncode == 0, stopped.stderr
    described = json.loads(server.cli("describe", task_id).stdout)
    assert described["lastStatus"] == "STOPPED"
    assert described["stoppedReason"] == "done here"
    assert task_id not in server.cli("ps").stdout
    assert task_id in server.cli("ps", "-a").stdout


def test_logs_follow_ends_when_task_stops(server: Server, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        taskdef("cli-follow", container("main", "for i in 1 2 3; do echo tick$i; sleep 0.3; done")),
    )
    arn = server.cli("run", "-d", path).stdout.strip()
    result = server.cli("logs", "-f", arn, timeout=30)
    assert [line.split("| ")[1] for line in result.stdout.splitlines()] == [
        "tick1",
        "tick2",
        "tick3",
    ]


def test_unknown_task_prefix(server: Server) -> None:
    result = server.cli("describe", "ffffffffffff")
    assert result.returncode == 1
    assert "no task matches" in result.stderr


def test_ctrl_c_stops_the_task_gracefully(server: Server, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        taskdef(
            "cli-ctrlc",
            container(
                "main",
                "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
                stopTimeout=10,
            ),
        ),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecslocal", "--port", str(server.port), "run", path],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "ready" in line
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert "main | got-term" in out
    assert proc.returncode == 0  # the essential container exited 0 after SIGTERM


def _run_in_process(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`ecslocal run` where no daemon listens (port 1), so it starts one on ``data_dir``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ecslocal",
            "--port",
            "1",
            "run",
            "examples/hello/taskdef.json",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert all(word in lines[0] for word in words), lines[0]


def test_run_on_a_corrupt_state_db_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.db").write_bytes(os.urandom(8192))
    _one_line_failure(_run_in_process(data), "state.db", "not a database")


def test_run_on_a_read_only_data_dir_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Server(data).start().stop()
    with read_only_data_dir(data):
        _one_line_failure(_run_in_process(data), "state.db", "read-only")
