"""Time warp (the task tag ecslocal:time-warp / `ecslocal run --time-warp N`): a task's
processes see a clock running N times faster (libfaketime) and ecslocal issues, rotates and
checks that task's credentials on the same clock, so an SDK's own refresh logic meets hours
of credential lifetimes in seconds."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ecslocal.runtime.timewarp import SHM_DIR, find_libfaketime
from tests.conftest import (
    Server,
    ecs_task_role,
    python_container,
    run_task,
    run_to_end,
    task_logs,
    taskdef,
    wait_stopped,
)

needs_libfaketime = pytest.mark.skipif(
    find_libfaketime() is None,
    reason="needs libfaketime (Debian's package libfaketime; .ci/run installs it)",
)

HOUR = 3600.0
WARP_1440 = [{"key": "ecslocal:time-warp", "value": "1440"}]

# boto3's default chain: it finds the credentials endpoint and refreshes by its own rules
# (advisory refresh 15 min before Expiration). Everything it sees of time is faked — its
# timeouts too, so they are scaled by the task's speed-up (read from FAKETIME, which ecslocal
# sets): botocore's fixed 2 s for the credentials endpoint would otherwise be 1.4 ms of real
# time at 1440x, which a busy machine does not always answer in, and that is no part of what
# is tested here. Each new key is printed with the Expiration it was served with.
ROTATIONS = """
import json, os, re, time, boto3, botocore.utils
from botocore.config import Config
speed = float(re.search(r"x([0-9.]+)", os.environ["FAKETIME"]).group(1))
botocore.utils.ContainerMetadataFetcher.TIMEOUT_SECONDS *= speed
config = Config(connect_timeout=60 * speed, read_timeout=60 * speed)
session = boto3.Session()
sts, ecs = session.client("sts", config=config), session.client("ecs", config=config)
start, calls, keys = time.time(), 0, []
while len(keys) < 4 and time.time() - start < 30 * 3600:
    arn = sts.get_caller_identity()["Arn"]
    ecs.list_clusters()
    calls += 2
    credentials = session.get_credentials()
    key = credentials.get_frozen_credentials().access_key
    if not keys or keys[-1] != key:
        keys.append(key)
        expiration = credentials._expiry_time.timestamp()  # the Expiration served
        print(json.dumps({"key": key, "at": time.time(), "arn": arn,
                          "expiration": expiration}), flush=True)
    time.sleep(60)
print(json.dumps({"calls": calls, "start": start, "end": time.time()}), flush=True)
"""


def _three_rotations_within_a_minute(server: Server, family: str, command: list[str]) -> None:
    """Run ``command`` (an SDK loop printing each new key) in a task at 1440x and check that
    it met 3 rotations of the daemon's default 6 h lifetime, every call succeeding, within
    a day of the task's clock (a minute of real time at 1440x)."""
    app = {"name": "app", "image": family, "memory": 512, "command": command}
    task, lines = run_to_end(server, family, app, role=True, timeout=180, tags=WARP_1440)
    assert task["containers"][0]["exitCode"] == 0, lines  # not one call failed
    keys = [json.loads(line) for line in lines if line.startswith('{"key"')]
    summary = json.loads(next(line for line in lines if line.startswith('{"calls"')))
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert {k["arn"] for k in keys} == {
        f"arn:aws:sts::000000000000:assumed-role/{family}/{task_id}"
    }
    assert len({k["key"] for k in keys}) == 4, lines  # the first credentials + 3 rotations
    # All on the task's clock (it starts at the task's creation). The first set was issued
    # as the task started (Expiration = issue + 6 h, to the second), before the SDK used it.
    origin = task["createdAt"].timestamp()
    assert origin + 6 * HOUR - 1 <= keys[0]["expiration"] <= keys[0]["at"] + 6 * HOUR, keys
    # Each set was used for close to its 6 h: ecslocal vends fresh ones only from 30 min
    # before Expiration, so the next set was issued 5.5 h or more after the earlier one and
    # first used inside the earlier one's last half hour; the SDK took it by its own rule
    # (botocore: 15 min before Expiration, JS v3: 5 min), so before 6 h — unless the SDK's
    # process was stalled right then, for which 1 h of task time (2.5 s real) is allowed.
    # That no call used an expired set is the exit code: ecslocal refuses expired keys.
    for earlier, later in zip(keys, keys[1:], strict=False):
        spacing = later["expiration"] - earlier["expiration"]  # = between their issue times
        assert 5.5 * HOUR - 1 <= spacing <= 7 * HOUR, (spacing / HOUR, keys)
        assert later["at"] >= earlier["expiration"] - 0.5 * HOUR - 1, keys
    assert summary["end"] - summary["start"] >= 3 * 5.5 * HOUR
    assert summary["end"] - origin <= 24 * HOUR, (summary, origin)
    wall = (task["stoppedAt"] - task["startedAt"]).total_seconds()
    print(f"{family}: 3 rotations of a 6 h lifetime in {wall:.1f} s wall, {summary['calls']} calls")


@needs_libfaketime
def test_botocore_meets_three_rotations_of_a_six_hour_lifetime_within_a_minute(
    server: Server,
) -> None:
    # At 1440x (a day a minute) botocore refreshes every 5 h 45 min of task time = 14.4 s.
    _three_rotations_within_a_minute(server, "warp-boto3", [sys.executable, "-c", ROTATIONS])


JS_DIR = Path(__file__).resolve().parent / "js"


@needs_libfaketime
@pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@aws-sdk").is_dir(),
    reason="needs node and the AWS SDK for JavaScript v3 (`npm ci --prefix tests/js`, which"
    " .ci/run does)",
)
def test_js_sdk_v3_meets_three_rotations_of_a_six_hour_lifetime_within_a_minute(
    server: Server,
) -> None:
    # The JS SDK moves its signing clock to the server's Date header when they disagree by
    # 5 min: ecslocal answers a warped task in its clock's Date, or this would fail at once.
    node = str(shutil.which("node"))
    _three_rotations_within_a_minute(server, "warp-node", [node, str(JS_DIR / "warp_rotation.js")])


# Each "t" line: the task's clock as a process reads it, bracketed by the real boot-time clock
# read just before and after from /proc/uptime (kernel text, which libfaketime leaves alone;
# CLOCK_BOOTTIME truncated to 10 ms). The brackets tie the warped reading to real time
# exactly, however long the machine makes the process wait between its steps.
UPTIME = "open('/proc/uptime').read().split()[0]"
DATE_TICK = (
    'read u0 _ < /proc/uptime; t=$(date +%s.%N); read u1 _ < /proc/uptime; echo "t $t $u0 $u1"'
)
CLOCK_PROBE = (
    f'python3 -c "import time; u0 = {UPTIME}; t = time.time(); u1 = {UPTIME};'
    " print('t', t, u0, u1)\";"
    ' python3 -c "import json, os, time, urllib.request;'
    " r = urllib.request.Request(os.environ['AWS_CONTAINER_CREDENTIALS_FULL_URI'],"
    " headers={'Authorization': os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN']});"
    " body = json.load(urllib.request.urlopen(r));"
    " print('creds', time.time(), body['Expiration'])\";"
    f" sleep 100; {DATE_TICK}; sleep 100; {DATE_TICK}"
)


@needs_libfaketime
def test_the_task_processes_and_ecslocal_share_one_clock(server: Server, tmp_path: Path) -> None:
    speed = 100
    role = ecs_task_role(server, "warp-clock")
    definition = taskdef(
        "warp-clock",
        {"name": "app", "image": "busybox", "memory": 128, "command": ["sh", "-c", CLOCK_PROBE]},
        taskRoleArn=role,
    )
    path = tmp_path / "taskdef.json"
    path.write_text(json.dumps(definition))
    out = server.cli("run", str(path), "-d", "--time-warp", str(speed))
    assert out.returncode == 0, out.stderr
    arn = out.stdout.strip()
    ecs = server.ecs()
    task = wait_stopped(ecs, arn, timeout=60)
    task_id = arn.rsplit("/", 1)[-1]
    assert task["containers"][0]["exitCode"] == 0
    origin = task["createdAt"].timestamp()
    events = task_logs(server, arn)
    ticks = [e for e in events if e["message"].startswith("t ")]
    boot_to_wall = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)

    def task_clock(wall: float) -> float:  # the task's clock: from its creation, 100x
        return origin + (wall - origin) * speed

    # Three processes started one after another — two of them 100 task-seconds (1 s real)
    # apart — all read the task's clock: the one that starts at the task's creation and runs
    # 100x. Each reading lies between the task-clock times of its two real-time brackets
    # (1 task-second allowed for the millisecond of createdAt), and before the stamp ecslocal
    # gave the line when it read it.
    assert len(ticks) == 3, events
    for event in ticks:
        seen, before, after = (float(f) for f in event["message"].split()[1:])
        earliest = task_clock(before + boot_to_wall)
        latest = task_clock(after + 0.01 + boot_to_wall)
        assert earliest - 1 <= seen <= latest + 1, (seen - earliest, latest - seen, event)
        assert seen <= task_clock(event["timestamp"] / 1000) + 1, event
    assert float(ticks[2]["message"].split()[1]) - float(ticks[1]["message"].split()[1]) >= 100
    # ecslocal issued the task's credentials on that clock as the task started, before the
    # process fetched them: Expiration (to the second) is 6 h after a task-clock time between
    # the task's creation and the fetch.
    creds = next(e["message"].split() for e in events if e["message"].startswith("creds "))
    expiration = time.mktime(time.strptime(creds[2], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert origin + 6 * HOUR - 1 <= expiration <= float(creds[1]) + 6 * HOUR, (creds, origin)
    # DescribeTasks shows the tag; the task's shared clock is gone with the task.
    tags = ecs.describe_tasks(tasks=[arn], include=["TAGS"])["tasks"][0]["tags"]
    assert {"key": "ecslocal:time-warp", "value": "100"} in tags
    assert not list(SHM_DIR.glob(f"*ecslocal-warp-{task_id}"))


STATIC_KEYS = """
import time, boto3
sts = boto3.client("sts", aws_access_key_id="test", aws_secret_access_key="test")
start = time.time()
while time.time() - start < 2 * 3600:
    sts.get_caller_identity()
    time.sleep(30)
print("hours", round((time.time() - start) / 3600, 1), flush=True)
"""


@needs_libfaketime
def test_static_keys_signed_on_a_warped_clock_are_accepted(server: Server) -> None:
    # Two hours of task time in about 5 s: far past SigV4's 15-minute window on the real
    # clock, so ecslocal has to check the signature time against the task's clock.
    task, lines = run_to_end(server, "warp-static", python_container(STATIC_KEYS), tags=WARP_1440)
    assert task["containers"][0]["exitCode"] == 0, lines
    assert lines[-1] == "hours 2.0", lines


@pytest.mark.parametrize("value", ["fast", "1", "0", "-5", "nan", "1e9"])
def test_bad_time_warp_values_are_refused(server: Server, value: str) -> None:
    ecs = server.ecs()
    definition = taskdef(
        "warp-bad", {"name": "app", "image": "busybox", "memory": 64, "command": ["true"]}
    )
    with pytest.raises(ClientError) as info:
        run_task(ecs, definition, tags=[{"key": "ecslocal:time-warp", "value": value}])
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert error["Message"] == (
        "Tag ecslocal:time-warp must be a speed-up from 2 to 100000 (how many times faster the"
        f" task's clock runs), not '{value}'."
    )


@needs_libfaketime
def test_a_task_refused_after_its_clock_was_made_leaves_nothing_behind(
    server: Server,
) -> None:
    before = set(SHM_DIR.glob("*ecslocal-warp-*"))
    ecs = server.ecs()
    definition = taskdef(
        "warp-envfile",
        {
            "name": "app",
            "image": "busybox",
            "memory": 64,
            "command": ["true"],
            "environmentFiles": [{"type": "s3", "value": "/no/such/file.env"}],
        },
    )
    with pytest.raises(ClientError) as info:
        run_task(ecs, definition, tags=[{"key": "ecslocal:time-warp", "value": "10"}])
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
    assert set(SHM_DIR.glob("*ecslocal-warp-*")) == before


def test_without_libfaketime_the_option_says_so(
    fresh_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECSLOCAL_LIBFAKETIME", "/nonexistent/libfaketime.so.1")
    server = fresh_server.start()
    assert any(
        "time warp (tag ecslocal:time-warp) unavailable" in line for line in server.output
    ), server.output
    ecs = server.ecs()
    definition = taskdef(
        "warp-missing", {"name": "app", "image": "busybox", "memory": 64, "command": ["true"]}
    )
    with pytest.raises(ClientError) as info:
        run_task(ecs, definition, tags=[{"key": "ecslocal:time-warp", "value": "60"}])
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert error["Message"].startswith(
        "Tag ecslocal:time-warp needs libfaketime, which this machine does not have: install"
        " libfaketime (Debian/Ubuntu: apt-get install libfaketime)"
    ), error
    assert ecs.list_tasks(family="warp-missing")["taskArns"] == []
    # the CLI says the same
    out = server.cli(
        "run",
        str(Path(__file__).parent.parent / "examples/hello/taskdef.json"),
        "-d",
        "--time-warp",
        "60",
    )
    assert out.returncode != 0
    assert "needs libfaketime" in out.stderr


@needs_libfaketime
def test_a_container_preload_is_kept_after_libfaketime(server: Server) -> None:
    app = {
        "name": "app",
        "image": "busybox",
        "memory": 64,
        "command": ["sh", "-c", 'echo "$LD_PRELOAD|$FAKETIME|$FAKETIME_SHARED"'],
        "environment": [{"name": "LD_PRELOAD", "value": "libc.so.6"}],
    }
    task, lines = run_to_end(
        server, "warp-preload", app, tags=[{"key": "ecslocal:time-warp", "value": "2"}]
    )
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    shared = f"/ecslocal-warp-{task_id}"
    assert lines == [f"{find_libfaketime()}:libc.so.6|+0 x2|{shared} {shared}"]
