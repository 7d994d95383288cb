"""Nothing a container wrote is lost to a daemon crash; storage faults are one clear line.

Disk-full and read-only tests mount a small tmpfs (root only; skipped with the reason
otherwise) and unmount it in teardown.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import (
    ROOT,
    Server,
    by_name,
    container,
    host_pids,
    marked,
    process_alive,
    read_only_data_dir,
    run_task,
    run_to_end,
    task_logs,
    taskdef,
    wait_for,
    wait_stopped,
)

GROUP = "/ecs/durability"

#: Writes line-1, line-2, ... to stdout as fast as it can; after each write its number goes
#: to a side file, so the side file's number is a lower bound of what reached stdout.
WRITER = (
    "import os, sys\n"
    "side = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
    "i = 0\n"
    "while True:\n"
    "    i += 1\n"
    "    os.write(1, b'line-%d\\n' % i)\n"
    "    os.pwrite(side, b'%12d' % i, 0)\n"
)


def _awslogs() -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": GROUP,
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "d",
        },
    }


def _all_events(logs: Any, stream: str) -> list[str]:
    """Every event of ``stream`` through GetLogEvents, page by page from the head."""
    messages: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": GROUP, "logStreamName": stream, "startFromHead": True}
    while True:
        page = logs.get_log_events(**kwargs)
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == kwargs.get("nextToken"):
            return messages
        kwargs["nextToken"] = page["nextForwardToken"]


def _side_count(path: Path) -> int:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


def test_kill_9_mid_stream_loses_no_line(fresh_server: Server, tmp_path: Path) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    side = tmp_path / "written"
    definition = taskdef(
        "spooled",
        {
            "name": "app",
            "image": "python",
            "command": [sys.executable, "-c", WRITER, str(side)],
            "memory": 128,
            "logConfiguration": _awslogs(),
        },
    )
    arn = run_task(ecs, definition)
    task_id = arn.rsplit("/", 1)[-1]
    deadline = time.monotonic() + 30
    while _side_count(side) < 1000:
        assert time.monotonic() < deadline, "the writer never reached 1,000 lines"
        time.sleep(0.01)
    server.kill9()
    # The reaper kills the container once the daemon is gone; what it wrote is final then.
    time.sleep(0.5)
    written = _side_count(side)

    restarted = Server(server.data_dir).start()
    try:
        messages = _all_events(restarted.client("logs"), f"d/app/{task_id}")
        count = len(messages)
        assert count >= written, f"{written - count} of {written} lines lost"
        assert messages == [f"line-{k}" for k in range(1, count + 1)], "out of order or doubled"
        # The same lines through ecslocal's own log route (`ecslocal logs`).
        out = restarted.cli("logs", task_id).stdout.splitlines()
        assert [line.rsplit(" ", 1)[-1] for line in out] == messages
        # The re-ingested spool is gone once its task is STOPPED and every byte is stored.
        assert not list((server.data_dir / "spool").glob(f"{task_id}*/*"))
    finally:
        restarted.stop()


def test_unterminated_line_at_a_crash_is_stored_after_restart(
    fresh_server: Server, tmp_path: Path
) -> None:
    server = fresh_server.start()
    ecs = server.ecs()
    ready = tmp_path / "ready"
    cmd = f"printf 'one\\ntwo\\r\\nhalf a line'; touch {ready}; exec sleep 300"
    arn = run_task(ecs, taskdef("partial", container("app", cmd)))
    deadline = time.monotonic() + 30
    while not (ready.exists() and [e["message"] for e in task_logs(server, arn)] == ["one", "two"]):
        assert time.monotonic() < deadline, task_logs(server, arn)
        time.sleep(0.05)
    server.kill9()
    restarted = Server(server.data_dir).start()
    try:
        events = task_logs(restarted, arn)
        assert [e["message"] for e in events] == ["one", "two", "half a line"]
        # Read after the crash, stamped no earlier than the lines stored before it.
        assert events[2]["timestamp"] >= events[1]["timestamp"]
    finally:
        restarted.stop()


def test_spool_is_removed_when_the_task_stops(server: Server, ecs: Any) -> None:
    arn = run_task(ecs, taskdef("spool-gone", container("app", "echo one; echo two >&2")))
    task_id = arn.rsplit("/", 1)[-1]
    wait_stopped(ecs, arn)
    assert not list((server.data_dir / "spool").glob(f"{task_id}*"))


def test_stored_output_is_released_from_a_running_containers_spool(
    server: Server, ecs: Any
) -> None:
    # 4 MiB of output, then the container stays up: its spool must not keep what is stored.
    writer = (
        "yes 0123456789abcdef0123456789abcdef0123456789abcdef | head -c 4194304; echo; echo end"
    )
    arn = run_task(ecs, taskdef("chatty", container("app", f"{writer}; exec sleep 300")))
    task_id = arn.rsplit("/", 1)[-1]
    try:
        deadline = time.monotonic() + 30
        while not (lines := [e["message"] for e in task_logs(server, arn)]) or lines[-1] != "end":
            assert time.monotonic() < deadline, "the output was never stored"
            time.sleep(0.1)
        assert len(lines) == 4194304 // 49 + 2  # 49-byte lines, a cut one, "end"
        out = next((server.data_dir / "spool" / task_id).glob("*.stdout")).stat()
        # Everything is stored: at most the last step (1 MiB) of it is still on disk.
        assert out.st_size > 4 * 1024 * 1024
        assert out.st_blocks * 512 < 1536 * 1024, f"the spool keeps {out.st_blocks * 512} bytes"
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


# -- storage faults -------------------------------------------------------------------------
def _serve_once(data_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`ecslocal serve` that is expected to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "ecslocal", "serve", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "ECSLOCAL_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_disk_full_does_not_wedge_a_task(tmpfs: Path) -> None:
    data = tmpfs / "data"
    server = Server(data).start()
    try:
        ecs = server.ecs()
        pidfile = tmpfs / "pid"
        app, marker = marked("app", f"echo $$ > {pidfile}; exec sleep 300")
        arn = run_task(ecs, taskdef("full", app))
        wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING" and pidfile.exists())
        # $$ is the pid inside the container's PID namespace: find its host pid.
        pid = host_pids(marker)[int(pidfile.read_text())]
        filler = _fill(tmpfs)
        try:
            ecs.stop_task(task=arn, reason="release rollback")
        except ClientError as exc:
            error = exc.response["Error"]
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert error["Code"] == "ServerException"
            assert "full" in error["Message"] and "\n" not in error["Message"]
        # A write that needs new pages cannot fit: ECS's ServerException, in one line.
        big = container("app", "true", environment=[{"name": "X", "value": "x" * 40000}])
        with pytest.raises(ClientError) as raised:
            ecs.register_task_definition(**taskdef("big", big))
        response = raised.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert response["Error"]["Code"] == "ServerException"
        assert "state.db" in response["Error"]["Message"]
        assert "disk is full" in response["Error"]["Message"]
        # The task stops all the same: its process ends and DescribeTasks says STOPPED.
        task = wait_stopped(ecs, arn)
        assert task["stoppedReason"] == "release rollback"
        deadline = time.monotonic() + 10
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(pid)
        output = "".join(server.output)
        assert "Traceback" not in output, output
        failures = [line for line in server.output if "disk is full" in line]
        assert len(failures) == 1, output
        # Space again: what the engine could not write reaches the store.
        filler.unlink()
        server.stop()
        restarted = Server(data).start()
        try:
            again = restarted.ecs().describe_tasks(tasks=[arn])["tasks"][0]
            assert again["lastStatus"] == "STOPPED"
            assert again["stoppedReason"] == "release rollback"
        finally:
            restarted.stop()
    finally:
        server.stop()


def test_serve_on_a_full_disk_is_one_line(tmpfs: Path) -> None:
    data = tmpfs / "data"
    _fill(tmpfs)
    _one_line_error(_serve_once(data), "state.db", "full")


def test_serve_on_a_read_only_state_db_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Server(data).start().stop()
    with read_only_data_dir(data):
        _one_line_error(_serve_once(data), "state.db", "read-only")


def test_serve_on_a_corrupt_state_db_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.db").write_bytes(os.urandom(8192))
    _one_line_error(_serve_once(data), "state.db", "not a database")


def test_zero_length_state_db_starts_and_says_so(fresh_server: Server) -> None:
    fresh_server.data_dir.mkdir(parents=True)
    (fresh_server.data_dir / "state.db").write_bytes(b"")
    server = fresh_server.start()
    assert any("state.db" in line and "empty" in line for line in server.output), server.output
    assert server.ecs().list_task_definition_families()["families"] == []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_is_private_to_the_user(fresh_server: Server) -> None:
    server = fresh_server.start()
    server.ecs().register_task_definition(**taskdef("private", container("app", "true")))
    data = server.data_dir
    assert _mode(data) == 0o700
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        assert _mode(data / name) == 0o600, name


def test_loose_modes_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Server(data).start().stop()
    data.chmod(0o755)
    (data / "state.db").chmod(0o644)
    server = Server(data).start()
    try:
        assert _mode(data) == 0o700
        assert _mode(data / "state.db") == 0o600
        assert _mode(data / "state.db-wal") == 0o600
    finally:
        server.stop()


# -- schema versions ------------------------------------------------------------------------
#: The tables today's (unversioned) code created, as it created them.
UNVERSIONED = """
CREATE TABLE clusters (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE task_definitions (family TEXT NOT NULL, revision INTEGER NOT NULL,
    status TEXT NOT NULL, body TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (family, revision));
CREATE TABLE tasks (task_id TEXT PRIMARY KEY, cluster TEXT NOT NULL, family TEXT NOT NULL,
    started_by TEXT, desired_status TEXT NOT NULL, last_status TEXT NOT NULL,
    created_at REAL NOT NULL, body TEXT NOT NULL, runtime TEXT NOT NULL DEFAULT '{}');
CREATE TABLE log_groups (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE log_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL,
    container TEXT NOT NULL, source TEXT NOT NULL, log_group TEXT, log_stream TEXT,
    timestamp INTEGER NOT NULL, ingestion_time INTEGER NOT NULL, message TEXT NOT NULL);
CREATE TABLE log_streams (log_group TEXT NOT NULL, name TEXT NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (log_group, name));
CREATE TABLE log_group_meta (name TEXT PRIMARY KEY, min_seq INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL DEFAULT '{}');
CREATE TABLE access_keys (access_key_id TEXT PRIMARY KEY, secret_access_key TEXT NOT NULL,
    session_token TEXT, account_id TEXT NOT NULL, arn TEXT NOT NULL, user_id TEXT NOT NULL,
    expiration REAL, issued_at REAL NOT NULL);
CREATE TABLE iam_roles (name TEXT PRIMARY KEY COLLATE NOCASE, body TEXT NOT NULL);
CREATE TABLE task_credentials (credentials_id TEXT PRIMARY KEY, task_arn TEXT NOT NULL,
    role_arn TEXT NOT NULL, auth_token TEXT NOT NULL, ttl REAL NOT NULL, access_key_id TEXT);
INSERT INTO log_groups VALUES ('/old/group', 1700000000.0);
INSERT INTO log_events (task_id, container, source, log_group, log_stream, timestamp,
    ingestion_time, message) VALUES ('', '', 'api', '/old/group', 's', 1700000000000,
    1700000000000, 'kept across the upgrade');
INSERT INTO task_credentials VALUES ('id', 'arn', 'role', 'token', 60.0, NULL);
"""


def test_unversioned_database_is_migrated(fresh_server: Server) -> None:
    data = fresh_server.data_dir
    data.mkdir(parents=True)
    with sqlite3.connect(data / "state.db") as db:
        db.executescript(UNVERSIONED)
    server = fresh_server.start()
    events = server.client("logs").get_log_events(
        logGroupName="/old/group", logStreamName="s", startFromHead=True
    )["events"]
    assert [e["message"] for e in events] == ["kept across the upgrade"]
    server.stop()
    with sqlite3.connect(data / "state.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = dict(db.execute("SELECT component, version FROM schema_versions"))
    assert "task_credentials" not in tables  # written and never read: dropped
    assert {"store", "logs", "access_keys", "iam_roles", "task_credentials"} <= set(versions)
    assert all(v >= 1 for v in versions.values())


def test_a_container_reopening_dev_stderr_stays_captured(server: Server) -> None:
    """`echo x >/dev/stderr` opens a description of the spool file of its own and closes it
    (inotify's IN_CLOSE_WRITE): that is not the container's end, and what the container writes
    to stderr afterwards through its own descriptor is still captured."""
    script = (
        "echo before >&2; sleep 0.3; echo reopened >/dev/stderr; sleep 0.3;"
        " for i in 1 2 3; do echo after-$i >&2; sleep 0.1; done"
    )
    task, lines = run_to_end(server, "reopen", container("app", script))
    assert by_name(task)["app"]["exitCode"] == 0
    assert lines[0] == "before"
    assert lines[-3:] == ["after-1", "after-2", "after-3"], lines


def test_reopening_dev_stderr_with_o_trunc_loses_no_line(server: Server, ecs: Any) -> None:
    """`echo x >/dev/stderr` in a shell opens /proc/self/fd/2 with O_TRUNC. On a spool file
    given to the container as its fd 2 that truncated it: lines the daemon had not read yet
    were lost, lines came out cut. The container's fds 1 and 2 are pipes now (its
    namespace's init relays them into the spool), and a pipe cannot be truncated: every line,
    from the shell's own fd and from two reopens per round, arrives whole and in order."""
    rounds = 400
    script = (
        f"i=0; while [ $i -lt {rounds} ]; do i=$((i+1)); echo fd-$i >&2;"
        " echo reopen-a-$i >/dev/stderr; echo reopen-b-$i >/dev/stderr; done"
    )
    app = container("app", script, logConfiguration=_awslogs())
    arn = run_task(ecs, taskdef("trunc", app))
    task = wait_stopped(ecs, arn)
    assert by_name(task)["app"]["exitCode"] == 0
    messages = _all_events(server.client("logs"), f"d/app/{arn.rsplit('/', 1)[-1]}")
    expected = [
        line for i in range(1, rounds + 1) for line in (f"fd-{i}", f"reopen-a-{i}", f"reopen-b-{i}")
    ]
    missing = len(set(expected) - set(messages))
    assert messages == expected, f"{missing} of {len(expected)} lines lost; {messages[:10]}"


def test_a_stopped_daemon_leaves_no_log_retry_behind(
    tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch of log lines the store refuses (disk full) is retried on a timer. The daemon's
    stop makes one last attempt and leaves no timer armed: before, the retry went on firing
    after the store was closed ("cannot write state.db …: Cannot operate on a closed
    database", every second for as long as the loop ran). What was refused stays in the spool
    files for the next start."""
    import asyncio
    import logging

    from ecslocal.config import Config
    from ecslocal.daemon import Daemon
    from ecslocal.runtime.logs import RETRY_SECONDS

    stopped_at: list[int] = []

    async def main() -> None:
        daemon = Daemon(Config(data_dir=tmpfs / "data", port=0))
        await daemon.start()
        filler = None
        try:
            assert daemon.agent is not None
            router = daemon.agent.logs
            filler = _fill(tmpfs)
            for i in range(32):  # 512 KiB: more than the pages a full disk leaves the store
                router.append("t-1", "app", "stdout", None, None, i, f"{i}" + "x" * 16000)
            router.flush()  # refused: a retry is armed
        finally:
            await daemon.stop()
            stopped_at.append(len(caplog.records))
            if filler is not None:
                filler.unlink()  # space again: a retry now would write
        # The loop runs on: a retry timer left armed would fire in here.
        await asyncio.sleep(RETRY_SECONDS * 2.5)

    with caplog.at_level(logging.ERROR, logger="ecslocal"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("disk is full" in m for m in messages[: stopped_at[0]]), messages
    assert messages[stopped_at[0] :] == [], "the log router retried after the daemon stopped"
