"""After kill -9 of the daemon its containers die with it; a restart marks its tasks STOPPED."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import (
    Server,
    by_name,
    container,
    process_alive,
    read_pids,
    run_task,
    taskdef,
    wait_for,
    wait_until,
)


def test_kill_9_then_restart(fresh_server: Server, tmp_path: Path) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    pids = tmp_path / "pids"
    # A main process and a grandchild in its own session: both must die with the daemon.
    cmd = f"setsid sh -c 'echo $$ >> {pids}; sleep 300' & echo $$ >> {pids}; sleep 300"
    arn = run_task(ecs, taskdef("recover", container("app", cmd)))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    procs = read_pids(pids, 2)
    assert all(process_alive(p) for p in procs)

    server.kill9()
    wait_until(
        lambda: not any(process_alive(p) for p in procs),
        what="the container processes to die with the daemon",
    )

    restarted = Server(server.data_dir).start()
    try:
        # Printed after "ready on": wait for it rather than read the output so far.
        restarted.wait_output("marked 1 task(s) of a previous run STOPPED")
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
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    pid = read_pids(pidfile, 1)[0]
    server.stop()
    assert not process_alive(pid)
    restarted = Server(server.data_dir).start()
    try:
        task = restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "STOPPED"
        assert "shutting down" in task["stoppedReason"]
    finally:
        restarted.stop()
