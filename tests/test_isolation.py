"""Isolation: nothing a task starts outlives it, a task cannot see another's processes (nor
steal its credentials from /proc/PID/environ), and a dead reaper is noticed.

Containers run in PID + mount namespaces of their own with a private /proc, as a Fargate
task's containers do by default (pidMode unset: "each container gets its own PID namespace",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#other_task_definition_params).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    Server,
    by_name,
    container,
    host_pids,
    marked,
    python_container,
    run_task,
    run_to_end,
    taskdef,
    wait_for,
    wait_stopped,
)


def _namespaces_work() -> bool:
    flags = ["--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        flags.append("--map-current-user")
    try:
        return subprocess.run(["unshare", *flags, "true"], capture_output=True).returncode == 0
    except OSError:
        return False


needs_namespaces = pytest.mark.skipif(
    not _namespaces_work(), reason="unshare --pid --mount-proc does not work on this machine"
)

# A main process, a setsid grandchild and a double-forked one: none may outlive the task.
ESCAPERS = (
    "setsid sh -c 'sleep 300' & "
    "sh -c 'setsid sleep 300 &' & "
    "(sleep 300 &) ; "
    "echo started; sleep 300"
)


def _wait_processes(marker: str, count: int, timeout: float = 15) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = host_pids(marker)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _gone(marker: str, timeout: float = 10) -> dict[int, int]:
    """What is left of the marked processes once they had ``timeout`` s to die."""
    deadline = time.monotonic() + timeout
    while True:
        left = host_pids(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _kill_leftovers(marker: str) -> None:
    for pid in host_pids(marker).values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


@pytest.fixture(params=["rss", "auto"])
def mode_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data", "--memory-enforcement", request.param).start()
    yield s
    s.stop()


@needs_namespaces
def test_escaped_children_die_at_stop_task(mode_server: Server) -> None:
    ecs = mode_server.ecs()
    app, marker = marked("app", ESCAPERS)
    arn = run_task(ecs, taskdef("escape-stop", app))
    try:
        wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
        assert len(_wait_processes(marker, 4)) >= 4
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)
        assert _gone(marker, timeout=0) == {}, "a setsid/double-forked child outlived StopTask"
    finally:
        _kill_leftovers(marker)


@needs_namespaces
def test_escaped_children_die_when_the_task_ends(mode_server: Server) -> None:
    ecs = mode_server.ecs()
    # The essential container exits at once; what it left behind must go with it.
    app, marker = marked("app", "setsid sh -c 'sleep 300' & (sleep 300 &); sleep 1; exit 3")
    arn = run_task(ecs, taskdef("escape-end", app))
    try:
        task = wait_stopped(ecs, arn)
        assert by_name(task)["app"]["exitCode"] == 3
        assert _gone(marker, timeout=0) == {}, "a child outlived the task's end"
    finally:
        _kill_leftovers(marker)


@needs_namespaces
def test_escaped_children_die_with_the_daemon_kill_9(mode_server: Server) -> None:
    ecs = mode_server.ecs()
    app, marker = marked("app", ESCAPERS)
    arn = run_task(ecs, taskdef("escape-kill9", app))
    try:
        wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
        assert len(_wait_processes(marker, 4)) >= 4
        mode_server.kill9()
        assert _gone(marker) == {}, "a child outlived the daemon's kill -9"
        restarted = Server(mode_server.data_dir, *mode_server.extra).start()
        try:
            assert _gone(marker, timeout=0) == {}
        finally:
            restarted.stop()
    finally:
        _kill_leftovers(marker)


@needs_namespaces
def test_a_container_sees_only_its_own_processes(server: Server) -> None:
    ecs = server.ecs()
    other, other_marker = marked("other", "sleep 300")
    other_arn = run_task(ecs, taskdef("iso-other", other))
    try:
        wait_for(ecs, other_arn, lambda t: t["lastStatus"] == "RUNNING")
        script = (
            "import os\n"
            "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "print('pids', len(pids), 'me', os.getpid())\n"
            "print('pid1', open('/proc/1/cmdline','rb').read().split(b'\\0')[1:3])\n"
        )
        task, lines = run_to_end(server, "iso-self", python_container(script))
        assert by_name(task)["app"]["exitCode"] == 0, lines
        counts = [line for line in lines if line.startswith("pids ")]
        # The app, and the namespace's init shim as PID 1: the app itself is not PID 1.
        assert counts and counts[0].split()[1] == "2", lines
        assert counts[0].split()[3] != "1", lines
    finally:
        ecs.stop_task(task=other_arn)
        wait_stopped(ecs, other_arn)
        _kill_leftovers(other_marker)


STEALER = """
import json, os, urllib.request
mine = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
found = []
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        env = open(f"/proc/{p}/environ", "rb").read().split(b"\\0")
    except OSError:
        continue
    pairs = dict(e.decode(errors="replace").partition("=")[::2] for e in env if b"=" in e)
    token = pairs.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    if token and token != mine:
        found.append((pairs["AWS_CONTAINER_CREDENTIALS_FULL_URI"], token))
print("FOUND", len(found))
for uri, token in found:
    try:
        req = urllib.request.Request(uri, headers={"Authorization": token})
        body = json.load(urllib.request.urlopen(req))
        print("STOLE", body["RoleArn"])
    except Exception as exc:
        print("REFUSED", exc)
req = urllib.request.Request(
    os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], headers={"Authorization": mine}
)
print("OWN", json.load(urllib.request.urlopen(req))["RoleArn"])
"""


@needs_namespaces
def test_a_task_cannot_read_another_tasks_credentials_token(server: Server) -> None:
    from tests.conftest import ecs_task_role

    ecs = server.ecs()
    victim_role = ecs_task_role(server, "iso-victim")
    victim = python_container("import time; time.sleep(300)", memory=64)
    victim_arn = run_task(ecs, taskdef("iso-victim", victim, taskRoleArn=victim_role))
    try:
        wait_for(ecs, victim_arn, lambda t: t["lastStatus"] == "RUNNING")
        task, lines = run_to_end(server, "iso-thief", python_container(STEALER), role=True)
        assert by_name(task)["app"]["exitCode"] == 0, lines
        assert "FOUND 0" in lines, lines
        assert not [line for line in lines if line.startswith("STOLE")], lines
        # It can still read its own.
        assert any(line.startswith("OWN ") and "iso-thief" in line for line in lines), lines
    finally:
        ecs.stop_task(task=victim_arn)
        wait_stopped(ecs, victim_arn)


@needs_namespaces
def test_health_check_runs_inside_the_containers_namespaces(server: Server) -> None:
    ecs = server.ecs()
    # Only what the container sees: its init and its own processes, not the host's hundreds.
    check = {
        "command": ["CMD-SHELL", "test $(ls -d /proc/[0-9]* | wc -l) -lt 10"],
        "interval": 5,
        "timeout": 5,
        "retries": 1,
    }
    app, marker = marked("app", "sleep 300", healthCheck=check)
    arn = run_task(ecs, taskdef("iso-health", app))
    try:
        task = wait_for(ecs, arn, lambda t: t["containers"][0]["healthStatus"] != "UNKNOWN", 30)
        assert task["containers"][0]["healthStatus"] == "HEALTHY"
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)
        _kill_leftovers(marker)


@needs_namespaces
def test_the_containers_path_does_not_choose_the_namespace_tools(server: Server) -> None:
    """A task that sets its own PATH (without /usr/bin) still starts, and its health check
    with a command relative to workingDirectory runs: setpriv, unshare and nsenter are the
    daemon's, found at start, not looked up on the container's PATH."""
    workdir = Path(server.data_dir).parent / "iso-path-wd"
    workdir.mkdir(exist_ok=True)
    check_script = workdir / "check.sh"
    check_script.write_text("#!/bin/sh\nexit 0\n")
    check_script.chmod(0o755)
    app = {
        "name": "app",
        "image": "busybox",
        "command": ["/bin/sh", "-c", "echo started; exec /bin/sleep 300"],
        "memory": 64,
        "workingDirectory": str(workdir),
        "environment": [{"name": "PATH", "value": "/opt/nothing-here"}],
        "healthCheck": {"command": ["CMD", "./check.sh"], "interval": 5, "retries": 1},
    }
    ecs = server.ecs()
    arn = run_task(ecs, taskdef("iso-path", app))
    try:
        task = wait_for(ecs, arn, lambda t: t["containers"][0]["healthStatus"] != "UNKNOWN", 30)
        assert task["lastStatus"] == "RUNNING"
        assert task["containers"][0]["healthStatus"] == "HEALTHY"
    finally:
        ecs.stop_task(task=arn)
        wait_stopped(ecs, arn)


@needs_namespaces
def test_serve_says_which_namespaces_are_in_force(server: Server) -> None:
    ready = "".join(server.output)
    assert "PID+mount namespaces per container" in ready, ready


def test_without_namespaces_serve_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECSLOCAL_PID_NAMESPACE", "off")
    s = Server(tmp_path / "data").start()
    try:
        assert "no PID namespace (ECSLOCAL_PID_NAMESPACE=off)" in "".join(s.output)
        task, lines = run_to_end(s, "iso-off", container("app", "echo hello"))
        assert lines == ["hello"] and by_name(task)["app"]["exitCode"] == 0
    finally:
        s.stop()


def _reaper_pid(server: Server, timeout: float = 10) -> int:
    """The daemon's live reaper (waiting a little: a restarted one may still be starting)."""
    assert server.proc is not None
    root = server.proc.pid
    deadline = time.monotonic() + timeout
    while True:
        for tid in os.listdir(f"/proc/{root}/task"):
            kids: list[str] = []
            with contextlib.suppress(OSError), open(f"/proc/{root}/task/{tid}/children") as f:
                kids = f.read().split()
            for child in kids:
                with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as c:
                    if b"ecslocal.runtime.reaper" in c.read():
                        return int(child)
        if time.monotonic() > deadline:
            raise AssertionError("no reaper among the daemon's children")
        time.sleep(0.05)


@pytest.mark.parametrize("namespaces", ["on", "off"])
def test_a_dead_reaper_is_restarted(
    namespaces: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if namespaces == "on" and not _namespaces_work():
        pytest.skip("unshare --pid --mount-proc does not work on this machine")
    monkeypatch.setenv("ECSLOCAL_PID_NAMESPACE", namespaces)
    # rss: no cgroup to sweep, so only the reaper (and the namespace) stands between a daemon
    # crash and an orphan. Without a namespace a setsid child escapes by design (see docs), so
    # that case runs plain children of the main process.
    s = Server(tmp_path / "data", "--memory-enforcement", "rss").start()
    cmd = ESCAPERS if namespaces == "on" else "sleep 300 & sleep 300 & echo started; sleep 300"
    app, marker = marked("app", cmd)
    try:
        old = _reaper_pid(s)
        os.kill(old, 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "restarted as pid" not in "".join(s.output):
            time.sleep(0.05)
        log = "".join(s.output)
        assert f"reaper (pid {old}) exited" in log and "restarted" in log, log
        assert _reaper_pid(s) != old
        ecs = s.ecs()
        arn = run_task(ecs, taskdef("reaper", app))
        wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
        assert len(_wait_processes(marker, 3)) >= 3
        s.kill9()
        assert _gone(marker) == {}, "a container process outlived the daemon"
    finally:
        s.stop()
        _kill_leftovers(marker)


RUNC = (
    "CannotStartContainerError: Error response from daemon: failed to create task for container:"
    " failed to create shim task: OCI runtime create failed: runc create failed: unable to start"
    " container process: {}: unknown"
)


def test_exec_failures_keep_runcs_reasons_through_the_namespace_init(
    server: Server, tmp_path: Path
) -> None:
    """The app is exec'd by the namespace's init, which reports the errno back: the reasons
    are runc's, word for word, as before namespaces."""
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    missing_dir = tmp_path / "no-such-dir"
    cases = {
        "path": (
            {"command": ["no-such-binary-iso"]},
            'exec: "no-such-binary-iso": executable file not found in $PATH',
        ),
        "absolute": (
            {"command": [str(tmp_path / "nope")]},
            f'exec: "{tmp_path}/nope": stat {tmp_path}/nope: no such file or directory',
        ),
        "eacces": (
            {"command": [str(not_executable)]},
            f'exec: "{not_executable}": permission denied',
        ),
        "cwd": (
            {"command": ["true"], "workingDirectory": str(missing_dir)},
            f'chdir to cwd ("{missing_dir}") set in config.json failed: no such file or directory',
        ),
    }
    for name, (fields, detail) in cases.items():
        definition = {"name": "app", "image": "busybox", "memory": 64, **fields}
        task, _ = run_to_end(server, f"iso-fail-{name}", definition)
        assert by_name(task)["app"]["reason"] == RUNC.format(detail), name
        assert task["stopCode"] == "TaskFailedToStart", name


def test_a_reaper_that_keeps_dying_makes_new_tasks_refused(fresh_server: Server) -> None:
    """Five restarts a minute are allowed; after that the daemon gives up on the reaper and
    refuses new tasks with a one-line reason, instead of running them unguarded."""
    s = fresh_server.start()
    for n in range(1, 7):
        os.kill(_reaper_pid(s), 9)
        want = "could not be restarted" if n == 6 else "restarted as pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "".join(s.output).count(want) < (1 if n == 6 else n):
            time.sleep(0.05)
    log = "".join(s.output)
    assert "could not be restarted" in log, log
    task, _ = run_to_end(s, "iso-refused", container("app", "echo never"))
    assert task["stopCode"] == "TaskFailedToStart"
    assert "reaper" in task["stoppedReason"] and "no new tasks" in task["stoppedReason"]
    assert by_name(task)["app"]["lastStatus"] == "STOPPED"
