"""StopTask: SIGTERM to the main process, stopTimeout, then SIGKILL to everything."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import (
    by_name,
    container,
    host_pids,
    marked,
    process_alive,
    read_pids,
    run_task,
    taskdef,
    wait_stopped,
    wait_until,
)


def test_container_that_traps_sigterm_exits_cleanly(ecs: Any, tmp_path: Path) -> None:
    seen, ready = tmp_path / "got-term", tmp_path / "trapped"
    cmd = (
        f"trap 'echo term > {seen}; exit 0' TERM; echo $$ > {ready}; while true; do sleep 0.1; done"
    )
    arn = run_task(ecs, taskdef("stop-trap", container("app", cmd, stopTimeout=10)))
    read_pids(ready, 1)  # sh has installed its trap
    ecs.stop_task(task=arn)
    task = wait_stopped(ecs, arn)
    # Exit code 0 from the trap: it stopped on SIGTERM, not at the stopTimeout (that is 137).
    assert by_name(task)["app"]["exitCode"] == 0
    assert seen.read_text().strip() == "term"


def test_container_that_ignores_sigterm_is_killed_at_stop_timeout(ecs: Any, tmp_path: Path) -> None:
    ready = tmp_path / "trapped"
    cmd = f"trap '' TERM; echo $$ > {ready}; while true; do sleep 0.1; done"
    arn = run_task(ecs, taskdef("stop-ignore", container("app", cmd, stopTimeout=2)))
    read_pids(ready, 1)  # sh ignores TERM from here on
    started = time.monotonic()
    ecs.stop_task(task=arn)
    task = wait_stopped(ecs, arn)
    elapsed = time.monotonic() - started
    # Not before the stopTimeout; the upper bound only rules out a kill at some later timer.
    assert 1.8 <= elapsed < 2 + 10, elapsed
    c = by_name(task)["app"]
    assert c["exitCode"] == 137  # SIGKILL
    assert "reason" not in c  # a stopTimeout kill is not an OOM


def test_sigterm_goes_to_main_process_only_and_sigkill_to_all(ecs: Any, tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    child_saw = tmp_path / "child-saw-term"
    main_ready = tmp_path / "main-trapped"
    # The main process (sh) exits on TERM; its child ignores nothing but would log a TERM.
    cmd = (
        f'sh -c \'trap "touch {child_saw}" TERM; echo $$ > {child_pid}; '
        f"while true; do sleep 0.1; done' & "
        f"trap 'exit 0' TERM; echo $$ > {main_ready}; while true; do sleep 0.1; done"
    )
    app, marker = marked("app", cmd, stopTimeout=5)
    arn = run_task(ecs, taskdef("stop-tree", app))
    ns_pid = read_pids(child_pid, 1)[0]  # the child has installed its trap
    read_pids(main_ready, 1)  # and so has the main process
    # $$ is the child's pid in the container's PID namespace; find it on the host.
    pid = host_pids(marker)[ns_pid]
    ecs.stop_task(task=arn)
    wait_stopped(ecs, arn)
    assert not child_saw.exists()  # SIGTERM went to the main process only
    # and the child went down with the container
    wait_until(lambda: not process_alive(pid), what="the child to be killed")
    assert not child_saw.exists()


def test_stop_unknown_task_is_an_error(ecs: Any) -> None:
    import botocore.exceptions
    import pytest

    with pytest.raises(botocore.exceptions.ClientError) as err:
        ecs.stop_task(task="0123456789abcdef0123456789abcdef")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


#: Ignores SIGTERM and writes line-1, line-2, … in bursts of 500 (a pause of 20 ms after each:
#: at full speed the daemon would spend the test storing a backlog); after each write its
#: number goes to a side file (a lower bound of what reached its stdout).
_STUBBORN_WRITER = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "side = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
    "i = 0\n"
    "while True:\n"
    "    i += 1\n"
    "    os.write(1, b'line-%d\\n' % i)\n"
    "    os.pwrite(side, b'%12d' % i, 0)\n"
    "    if i % 500 == 0:\n"
    "        time.sleep(0.02)\n"
)


def test_the_stop_timeout_kill_loses_no_line_in_the_relay(
    server: Any, ecs: Any, tmp_path: Path
) -> None:
    """At the stopTimeout the daemon asks the namespace's init to end the container instead of
    SIGKILLing it: the init kills the writer, then relays what its pipe still holds. Every line
    the writer wrote before it died is stored, in order."""
    import sys

    from tests.conftest import task_logs

    side = tmp_path / "written"
    app = {
        "name": "app",
        "image": "python",
        "command": [sys.executable, "-c", _STUBBORN_WRITER, str(side)],
        "memory": 128,
        "stopTimeout": 1,
    }
    arn = run_task(ecs, taskdef("stop-relay", app))
    wait_until(lambda: side.exists() and side.read_text().strip(), what="the first lines")
    ecs.stop_task(task=arn)
    task = wait_stopped(ecs, arn)
    assert by_name(task)["app"]["exitCode"] == 137  # killed at the stopTimeout
    written = int(side.read_text())
    lines = [e["message"] for e in task_logs(server, arn)]
    assert len(lines) >= written, f"{written - len(lines)} of {written} lines lost"
    assert lines == [f"line-{k}" for k in range(1, len(lines) + 1)]


def test_an_init_that_does_not_end_is_sigkilled(ecs: Any, tmp_path: Path) -> None:
    """If the namespace's init does not end its container when asked (here it is stopped),
    SIGKILL follows (HARD_KILL_SECONDS later): the task still stops."""
    import os
    import signal

    ready = tmp_path / "ready"
    app, marker = marked("app", f"trap '' TERM; echo $$ > {ready}; exec sleep 300", stopTimeout=1)
    arn = run_task(ecs, taskdef("stop-stuck-init", app))
    read_pids(ready, 1)
    pids = wait_until(lambda: (found := host_pids(marker)).get(1) and found, what="the init")
    os.kill(pids[1], signal.SIGSTOP)  # the init: PID 1 of the container's namespace
    ecs.stop_task(task=arn)
    task = wait_stopped(ecs, arn)
    assert by_name(task)["app"]["exitCode"] == 137
    wait_until(
        lambda: not any(process_alive(p) for p in pids.values()),
        what="every process of the container to be gone",
    )
