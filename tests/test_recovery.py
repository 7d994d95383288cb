"""After kill -9 of the daemon its containers die with it; a restart marks its tasks STOPPED."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    Server,
    by_name,
    container,
    host_pids,
    marked,
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
    app, marker = marked("app", cmd)
    arn = run_task(ecs, taskdef("recover", app))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    # $$ is a pid in the container's PID namespace: find the host pids.
    ns_pids = read_pids(pids, 2)  # both have started (and inherited the marker)
    seen = host_pids(marker)
    procs = [seen[p] for p in ns_pids]
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
    app, marker = marked("app", f"echo $$ > {pidfile}; sleep 300")
    arn = run_task(ecs, taskdef("shutdown", app))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    pid = host_pids(marker)[read_pids(pidfile, 1)[0]]
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


def test_recovery_never_kills_a_stranger(fresh_server: Server) -> None:
    """A restarted daemon checks a stored container's identity (boot, start time, PID
    namespace) before it kills anything: a decoy now holding the stored pid and process group
    survives recovery."""
    import json
    import sqlite3
    import subprocess

    server = fresh_server.start()
    ecs = server.ecs()
    app, marker = marked("app", "sleep 300")
    arn = run_task(ecs, taskdef("stranger", app))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    task_id = arn.rsplit("/", 1)[-1]
    # The init's identity is learnt after RUNNING was stored: the stored record gets it too
    # (before, only the task's next version carried it, so a crash meanwhile left recovery
    # a record without the init).
    wait_until(
        lambda: _stored_records(server.data_dir, task_id).get("app", {}).get("init_pid"),
        what="the namespace init's identity in the stored recovery record",
    )
    server.kill9()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and host_pids(marker):
        time.sleep(0.05)
    # The container is gone; a stranger (its own session and group) takes over its slot: the
    # stored record is pointed at it, as PID reuse after a crash or a reboot would.
    decoy = subprocess.Popen(["sleep", "300"], start_new_session=True)
    # And a cgroup of its own outside ecslocal's (root with cgroup v1 memory only): a record
    # naming it must not make recovery kill what is in it.
    decoy_cgroup = _decoy_cgroup(decoy.pid)
    try:
        db = sqlite3.connect(server.data_dir / "state.db")
        (runtime,) = db.execute(
            "SELECT runtime FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        records = json.loads(runtime)
        assert records, "no recovery record was stored"
        for record in records.values():
            # Each process a kill would reach is named with its identity: the boot, the
            # start time and PID namespace of the group leader (unshare) and of the init.
            assert record["boot"] and record["start"] and record["leader_pidns"], record
            assert record["init_pid"] and record["init_start"] and record["pidns"], record
            for key, value in record.items():
                if key.endswith(("pid", "pgid")) and isinstance(value, int):
                    record[key] = decoy.pid
            if decoy_cgroup is not None:
                record["cgroup"] = str(decoy_cgroup)
        db.execute("UPDATE tasks SET runtime = ? WHERE task_id = ?", (json.dumps(records), task_id))
        db.commit()
        db.close()
        restarted = Server(server.data_dir).start()
        try:
            assert (
                restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]["lastStatus"] == "STOPPED"
            )
            time.sleep(0.2)
            assert decoy.poll() is None, "recovery killed a process that was not the container's"
        finally:
            restarted.stop()
    finally:
        decoy.kill()
        decoy.wait()
        if decoy_cgroup is not None:
            with contextlib.suppress(OSError):
                decoy_cgroup.rmdir()


def _decoy_cgroup(pid: int) -> Path | None:
    import os
    import uuid

    base = Path("/sys/fs/cgroup/memory")
    if os.geteuid() != 0 or not (base / "cgroup.procs").exists():
        return None
    path = base / f"decoy-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    (path / "cgroup.procs").write_text(str(pid))
    return path


def test_recovery_kills_nothing_its_record_does_not_name_for_this_boot(
    fresh_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored record without the boot id names no process: before, a missing boot id was
    taken for this boot, and recovery killed on the pid and start time alone. As in the
    leftovers test below, the container outlives the daemon (no namespaces, reaper stopped);
    its record loses its boot id, and the restarted daemon leaves it alone."""
    import json
    import os
    import signal
    import sqlite3

    monkeypatch.setenv("ECSLOCAL_PID_NAMESPACE", "off")
    server = Server(fresh_server.data_dir, "--memory-enforcement", "rss").start()
    app, marker = marked("app", "sleep 300")
    reaper = None
    try:
        ecs = server.ecs()
        arn = run_task(ecs, taskdef("no-boot", app))
        wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
        wait_until(lambda: host_pids(marker), what="the container's process")
        reaper = _reaper_of(server)
        os.kill(reaper, signal.SIGSTOP)
        server.kill9()
        db = sqlite3.connect(server.data_dir / "state.db")
        task_id = arn.rsplit("/", 1)[-1]
        (runtime,) = db.execute(
            "SELECT runtime FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        records = json.loads(runtime)
        assert records["app"]["boot"]
        del records["app"]["boot"]
        db.execute("UPDATE tasks SET runtime = ? WHERE task_id = ?", (json.dumps(records), task_id))
        db.commit()
        db.close()
        restarted = Server(server.data_dir).start()
        try:
            task = restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]
            assert task["lastStatus"] == "STOPPED"  # recovery has run
            assert host_pids(marker), "recovery killed on a record without a boot id"
        finally:
            restarted.stop()
    finally:
        server.stop()
        if reaper is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(reaper, signal.SIGKILL)
        for pid in host_pids(marker).values():
            os.kill(pid, signal.SIGKILL)


def _reaper_of(server: Server) -> int:
    import os

    return wait_until(
        lambda: next(
            (
                int(p)
                for p in os.listdir("/proc")
                if p.isdigit()
                and _parent(int(p)) == server.proc.pid  # type: ignore[union-attr]
                and b"ecslocal.runtime.reaper" in _cmdline(int(p))
            ),
            None,
        ),
        what="the daemon's reaper",
    )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_recovery_still_kills_its_own_leftovers(
    fresh_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity check lets recovery kill what is really the container's. Without PID
    namespaces (nothing then ends a container with the daemon but the reaper) and with the
    reaper stopped, a daemon kill -9 leaves the container running; the restarted daemon finds
    it by its record, checks it is the same process, and kills it."""
    import os
    import signal

    monkeypatch.setenv("ECSLOCAL_PID_NAMESPACE", "off")
    server = Server(fresh_server.data_dir, "--memory-enforcement", "rss").start()
    app, marker = marked("app", "sleep 300 & sleep 300")
    reaper = None
    try:
        ecs = server.ecs()
        arn = run_task(ecs, taskdef("leftovers", app))
        wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(host_pids(marker)) < 2:
            time.sleep(0.05)
        reaper = next(
            int(p)
            for p in os.listdir("/proc")
            if p.isdigit()
            and _parent(int(p)) == server.proc.pid  # type: ignore[union-attr]
            and b"ecslocal.runtime.reaper" in Path(f"/proc/{p}/cmdline").read_bytes()
        )
        os.kill(reaper, signal.SIGSTOP)
        server.kill9()
        time.sleep(0.5)
        assert len(host_pids(marker)) >= 2, "the container should have outlived the daemon"
        restarted = Server(server.data_dir).start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and host_pids(marker):
                time.sleep(0.05)
            assert host_pids(marker) == {}, "recovery left the container's processes running"
            assert "killed what was left of container app" in "".join(restarted.output)
        finally:
            restarted.stop()
    finally:
        server.stop()
        if reaper is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(reaper, signal.SIGKILL)
        for pid in host_pids(marker).values():
            os.kill(pid, signal.SIGKILL)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_a_second_daemon_on_the_same_data_dir_refuses_to_start(fresh_server: Server) -> None:
    """A second `serve` on a data directory in use would take the first one's running tasks
    for a crash's leftovers (mark them STOPPED, kill them): it exits with one line instead."""
    server = fresh_server.start()
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("first", container("app", "sleep 300")))
    wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    second = Server(server.data_dir)
    with pytest.raises(RuntimeError) as raised:
        second.start()
    second.stop()
    said = str(raised.value)
    assert "another ecslocal daemon" in said and "Traceback" not in said, said
    assert ecs.describe_tasks(tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING"
    ecs.stop_task(task=arn)


def _stored_records(data_dir: Path, task_id: str) -> dict[str, Any]:
    import json
    import sqlite3

    db = sqlite3.connect(data_dir / "state.db")
    try:
        row = db.execute("SELECT runtime FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else {}
