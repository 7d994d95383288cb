"""After kill -9 of the daemon its containers die with it; a restart marks its tasks STOPPED."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Server, by_name, container, process_alive, run_task, taskdef, wait_for


def test_kill_9_then_restart(fresh_server: Server, tmp_path: Path) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    pids = tmp_path / "pids"
    # A main process and a grandchild in its own session: both must die with the daemon.
    cmd = (
        f"setsid sh -c 'echo $$ >> {pids}; sleep 300' & "
        f"echo $$ >> {pids}; sleep 300"
    )
    arn = run_task(ecs, taskdef("recover", container("app", cmd)))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(pids.read_text().split()) < 2:
        time.sleep(0.05)
    procs = [int(p) for p in pids.read_text().split()]
    assert all(process_alive(p) for p in procs)

    server.kill9()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(process_alive(p) for p in procs):
        time.sleep(0.05)
    assert not any(process_alive(p) for p in procs), "container processes outlived the daemon"

    restarted = Server(server.data_dir).start()
    try:
        assert "marked 1 task(s) of a previous run STOPPED" in "".join(restarted.output)
        task = restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "STOPPED" and task["desiredStatus"] == "STOPPED"
        assert "daemon" in task["stoppedReason"]
        assert by_name(task)["app"]["lastStatus"] == "STOPPED"
        # The task definition survived too.
        assert restarted.ecs().describe_task_definition(taskDefinition="recover")
    finally:
        restarted.stop()


def test_clean_shutdown_stops_running_tasks(fresh_server: Server, tmp_path: Path) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    pidfile = tmp_path / "pid"
    arn = run_task(ecs, taskdef("shutdown", container("app", f"echo $$ > {pidfile}; sleep 300")))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING" and pidfile.exists())
    time.sleep(0.1)
    pid = int(pidfile.read_text())
    server.stop()
    assert not process_alive(pid)
    restarted = Server(server.data_dir).start()
    try:
        task = restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "STOPPED"
        assert "shutting down" in task["stoppedReason"]
    finally:
        restarted.stop()


def test_user_stopped_reason_survives_kill_9(fresh_server: Server, tmp_path: Path) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    # The container ignores SIGTERM, so the task is still STOPPING when the daemon dies.
    arn = run_task(ecs, taskdef("stubborn", container("app", "trap '' TERM; sleep 300 & wait")))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    ecs.stop_task(task=arn, reason="rolling back release 42")
    server.kill9()
    restarted = Server(server.data_dir).start()
    try:
        task = restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "STOPPED"
        assert task["stoppedReason"] == "rolling back release 42"
        assert task["stopCode"] == "UserInitiated"
    finally:
        restarted.stop()
