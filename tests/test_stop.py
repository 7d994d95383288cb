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
