"""CloudWatch Logs API: groups, streams and events, from both PutLogEvents and tasks' awslogs
output, read back through boto3 the way the AWS CLI (`aws logs tail --follow`) does."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, container, run_task, taskdef, wait_for, wait_stopped


def _name(tag: str) -> str:
    return f"/test/{tag}/{uuid.uuid4().hex[:8]}"


def _awslogs(group: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": group,
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "p",
        },
    }


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def logs(server: Server) -> Any:
    return server.client("logs")


def test_log_group_lifecycle(logs: Any) -> None:
    base = _name("groups")
    before = _now_ms()
    for suffix in ("a", "b", "c"):
        logs.create_log_group(logGroupName=f"{base}/{suffix}")
    logs.create_log_group(logGroupName=f"{base}-other")

    with pytest.raises(ClientError) as excinfo:
        logs.create_log_group(logGroupName=f"{base}/a")
    assert _error(excinfo) == (
        "ResourceAlreadyExistsException",
        "The specified log group already exists",
    )

    groups = logs.describe_log_groups(logGroupNamePrefix=f"{base}/")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [f"{base}/a", f"{base}/b", f"{base}/c"]
    first = groups[0]
    assert first["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{base}/a:*"
    assert first["logGroupArn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{base}/a"
    assert before - 1000 <= first["creationTime"] <= _now_ms() + 1000
    assert first["metricFilterCount"] == 0
    assert first["storedBytes"] == 0
    assert first["logGroupClass"] == "STANDARD"
    assert "retentionInDays" not in first

    pages = list(
        logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix=f"{base}/", PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["logGroups"]) for p in pages] == [2, 1]
    assert "nextToken" in pages[0] and "nextToken" not in pages[1]
    assert [g["logGroupName"] for p in pages for g in p["logGroups"]] == [
        f"{base}/a",
        f"{base}/b",
        f"{base}/c",
    ]

    # A name pattern is a case-sensitive substring and answers with three fields only.
    pattern = base.rsplit("/", 1)[-1] + "-oth"
    [found] = logs.describe_log_groups(logGroupNamePattern=pattern)["logGroups"]
    assert set(found) == {"arn", "creationTime", "logGroupName"}
    assert logs.describe_log_groups(logGroupNamePattern=pattern.upper())["logGroups"] == []
    with pytest.raises(ClientError) as excinfo:
        logs.describe_log_groups(logGroupNamePrefix=base, logGroupNamePattern=pattern)
    assert _error(excinfo)[0] == "InvalidParameterException"

    logs.put_retention_policy(logGroupName=f"{base}/b", retentionInDays=7)
    [b] = logs.describe_log_groups(logGroupNamePrefix=f"{base}/b")["logGroups"]
    assert b["retentionInDays"] == 7
    with pytest.raises(ClientError) as excinfo:
        logs.put_retention_policy(logGroupName=f"{base}/b", retentionInDays=2)
    assert _error(excinfo)[0] == "InvalidParameterException"
    logs.delete_retention_policy(logGroupName=f"{base}/b")
    [b] = logs.describe_log_groups(logGroupNamePrefix=f"{base}/b")["logGroups"]
    assert "retentionInDays" not in b

    logs.create_log_group(logGroupName=f"{base}/p", deletionProtectionEnabled=True)
    with pytest.raises(ClientError) as excinfo:
        logs.delete_log_group(logGroupName=f"{base}/p")
    assert _error(excinfo)[0] == "ValidationException"
    logs.put_log_group_deletion_protection(
        logGroupIdentifier=f"{base}/p", deletionProtectionEnabled=False
    )
    logs.delete_log_group(logGroupName=f"{base}/p")

    logs.delete_log_group(logGroupName=f"{base}/a")
    names = [
        g["logGroupName"]
        for g in logs.describe_log_groups(logGroupNamePrefix=f"{base}/")["logGroups"]
    ]
    assert names == [f"{base}/b", f"{base}/c"]
    with pytest.raises(ClientError) as excinfo:
        logs.delete_log_group(logGroupName=f"{base}/a")
    assert _error(excinfo) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )


def test_put_log_events_round_trip(logs: Any) -> None:
    group = _name("put")
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as excinfo:
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": _now_ms(), "message": "x"}],
        )
    assert _error(excinfo) == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    with pytest.raises(ClientError) as excinfo:
        logs.create_log_stream(logGroupName=group, logStreamName="s")
    assert _error(excinfo)[0] == "ResourceAlreadyExistsException"

    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["logStreamName"] == "s"
    assert "firstEventTimestamp" not in stream and stream["storedBytes"] == 0

    now = _now_ms()
    with pytest.raises(ClientError) as excinfo:
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 5, "message": "a"}],
        )
    assert _error(excinfo) == (
        "InvalidParameterException",
        "Log events in a single PutLogEvents request must be in chronological order.",
    )

    old = now - 15 * 86_400_000
    out = logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": old, "message": "too old"},
            {"timestamp": now - 20, "message": "one"},
            {"timestamp": now - 10, "message": "two"},
            {"timestamp": now, "message": "three"},
        ],
    )
    assert out["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 0}

    got = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [(e["timestamp"], e["message"]) for e in got["events"]] == [
        (now - 20, "one"),
        (now - 10, "two"),
        (now, "three"),
    ]
    assert all(e["ingestionTime"] >= now - 1000 for e in got["events"])

    # GetLogEvents' startTime is inclusive, its endTime exclusive.
    got = logs.get_log_events(
        logGroupName=group, logStreamName="s", startFromHead=True, startTime=now - 10, endTime=now
    )
    assert [e["message"] for e in got["events"]] == ["two"]

    # Events older than the group's retention are rejected as expired.
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    out = logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": now - 2 * 86_400_000, "message": "expired"}],
    )
    assert out["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 0}
    logs.delete_retention_policy(logGroupName=group)

    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["firstEventTimestamp"] == now - 20
    assert stream["lastEventTimestamp"] == now
    assert stream["lastIngestionTime"] >= stream["creationTime"]
    [g] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["storedBytes"] == len("onetwothree")


def test_get_log_events_body_is_what_json_dumps_writes(logs: Any) -> None:
    """GetLogEvents writes its JSON itself (api/logs.py ``_events_json``): the bytes must be
    those ``json.dumps`` of the same document gives (what the JSON protocol writes for every
    other answer), for messages that need escaping too, on forward, backward and empty pages."""
    group = _name("escape")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    messages = [
        'quote " and backslash \\ and slash /',
        "tab\tnew\nline\rreturn \x01\x1f control",
        "caf\u00e9 \u65e5\u672c \U0001f600 emoji",
        "</script> & <b>",
        " spaces  ",
    ]
    now = _now_ms()
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": now - 10 + i, "message": m} for i, m in enumerate(messages)],
    )
    bodies: list[bytes] = []

    def keep(http_response: Any, **_: Any) -> None:
        bodies.append(http_response.content)

    logs.meta.events.register("after-call.cloudwatch-logs.GetLogEvents", keep)
    first = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True, limit=3)
    rest = logs.get_log_events(
        logGroupName=group, logStreamName="s", nextToken=first["nextForwardToken"]
    )
    end = logs.get_log_events(
        logGroupName=group, logStreamName="s", nextToken=rest["nextForwardToken"]
    )
    back = logs.get_log_events(
        logGroupName=group, logStreamName="s", nextToken=rest["nextBackwardToken"], limit=2
    )
    latest = logs.get_log_events(logGroupName=group, logStreamName="s")
    got = [e["message"] for e in first["events"] + rest["events"]]
    assert got == messages
    assert end["events"] == [] and end["nextForwardToken"] == rest["nextForwardToken"]
    assert [e["message"] for e in back["events"]] == messages[1:3]
    assert [e["message"] for e in latest["events"]] == messages
    assert len(bodies) == 5
    for body in bodies:
        assert body == json.dumps(json.loads(body)).encode()

    # What is wrong is said in this order: the stream, then the token.
    for token in (None, "f/" + "0" * 56, "nonsense"):
        extra = {"nextToken": token} if token else {}
        with pytest.raises(ClientError) as excinfo:
            logs.get_log_events(logGroupName=group, logStreamName="nope", **extra)
        assert _error(excinfo) == (
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        )
    with pytest.raises(ClientError) as excinfo:
        logs.get_log_events(logGroupName=group, logStreamName="s", nextToken="nonsense")
    assert _error(excinfo) == ("InvalidParameterException", "The specified nextToken is invalid.")
    # A stream made by CreateLogStream exists before it has events.
    logs.create_log_stream(logGroupName=group, logStreamName="empty")
    assert logs.get_log_events(logGroupName=group, logStreamName="empty")["events"] == []


def test_task_output_through_streams_and_get_log_events(ecs: Any, logs: Any) -> None:
    group = _name("task")
    arn = run_task(
        ecs,
        taskdef(
            "logs-api-get",
            container(
                "app",
                "echo; for i in $(seq 1 30); do echo line-$i; done",
                logConfiguration=_awslogs(group),
            ),
        ),
    )
    wait_stopped(ecs, arn)
    task_id = arn.rsplit("/", 1)[-1]
    lines = [f"line-{i}" for i in range(1, 31)]

    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    name = f"p/app/{task_id}"
    assert stream["logStreamName"] == name
    assert stream["arn"] == (
        f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:log-stream:{name}"
    )
    assert stream["firstEventTimestamp"] <= stream["lastEventTimestamp"]
    assert stream["lastIngestionTime"] >= stream["lastEventTimestamp"]

    def get(**kw: Any) -> dict[str, Any]:
        return logs.get_log_events(logGroupName=group, logStreamName=name, limit=10, **kw)

    def messages(page: dict[str, Any]) -> list[str]:
        return [e["message"] for e in page["events"]]

    # From the head, forward tokens walk the stream; the end is a token that comes back.
    page = get(startFromHead=True)
    seen = messages(page)
    token = page["nextForwardToken"]
    while True:
        page = get(startFromHead=True, nextToken=token)
        seen += messages(page)
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == lines  # the empty line is not an event
    assert page["events"] == []
    assert token.startswith("f/") and len(token) == 58

    # From the tail: the latest events, ascending; backward tokens page back to the start.
    page = get()
    assert messages(page) == lines[20:]
    page = get(nextToken=page["nextBackwardToken"])
    assert messages(page) == lines[10:20]
    page = get(nextToken=page["nextBackwardToken"])
    assert messages(page) == lines[:10]
    last = get(nextToken=page["nextBackwardToken"])
    assert last["events"] == [] and last["nextBackwardToken"] == page["nextBackwardToken"]
    # A forward token from a tail page reads only what came after it.
    assert get(nextToken=get()["nextForwardToken"])["events"] == []

    by_arn = logs.get_log_events(
        logGroupIdentifier=f"arn:aws:logs:us-east-1:000000000000:log-group:{group}",
        logStreamName=name,
        startFromHead=True,
        limit=2,
    )
    assert messages(by_arn) == lines[:2]

    with pytest.raises(ClientError) as excinfo:
        logs.get_log_events(logGroupName=group, logStreamName="p/app/nope")
    assert _error(excinfo) == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
    with pytest.raises(ClientError) as excinfo:
        logs.get_log_events(logGroupName=group + "-nope", logStreamName=name)
    assert _error(excinfo)[0] == "ResourceNotFoundException"

    # Deleting the group drops its events from CloudWatch; a new group of that name is empty.
    logs.delete_log_group(logGroupName=group)
    with pytest.raises(ClientError):
        logs.describe_log_streams(logGroupName=group)
    logs.create_log_group(logGroupName=group)
    assert logs.describe_log_streams(logGroupName=group)["logStreams"] == []


def test_filter_log_events(logs: Any) -> None:
    group = _name("filter")
    logs.create_log_group(logGroupName=group)
    for stream in ("web/1", "web/2", "worker/1"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    base = _now_ms() - 60_000
    messages = [
        ("web/1", "ERROR disk full"),
        ("web/2", "WARN disk almost full"),
        ("worker/1", "INFO all good"),
        ("web/1", "ERROR Exiting now"),
        ("web/2", "ERROR user@example.com login failed"),
        ("worker/1", "error in lower case"),
    ]
    for i, (stream, message) in enumerate(messages):
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": base + i * 100, "message": message}],
        )

    def matching(**kw: Any) -> list[str]:
        out = logs.filter_log_events(logGroupName=group, **kw)
        assert "nextToken" not in out
        return [e["message"] for e in out["events"]]

    everything = [m for _, m in messages]
    assert matching() == everything
    assert matching(filterPattern="") == everything
    assert matching(filterPattern="ERROR") == [everything[i] for i in (0, 3, 4)]
    assert matching(filterPattern="ERROR disk") == ["ERROR disk full"]
    assert matching(filterPattern="?ERROR ?WARN") == [everything[i] for i in (0, 1, 3, 4)]
    assert matching(filterPattern="ERROR -Exiting") == [everything[i] for i in (0, 4)]
    assert matching(filterPattern='"disk full"') == ["ERROR disk full"]
    assert matching(filterPattern='"user@example.com"') == [everything[4]]
    assert matching(filterPattern="%^(INFO|WARN)%") == [everything[1], everything[2]]
    with pytest.raises(ClientError) as excinfo:
        matching(filterPattern='{ $.level = "ERROR" }')
    assert _error(excinfo)[0] == "InvalidParameterException"

    # startTime and endTime are both inclusive.
    assert matching(startTime=base + 100, endTime=base + 300) == everything[1:4]
    assert matching(logStreamNames=["web/1", "worker/1"]) == [everything[i] for i in (0, 2, 3, 5)]
    assert matching(logStreamNamePrefix="web/") == [everything[i] for i in (0, 1, 3, 4)]
    with pytest.raises(ClientError) as excinfo:
        matching(logStreamNames=["web/1"], logStreamNamePrefix="web/")
    assert _error(excinfo)[0] == "InvalidParameterException"

    pages = list(
        logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, PaginationConfig={"PageSize": 4}
        )
    )
    assert [len(p["events"]) for p in pages] == [4, 2]
    events = [e for p in pages for e in p["events"]]
    assert [e["message"] for e in events] == everything
    assert [e["logStreamName"] for e in events] == [s for s, _ in messages]
    assert len({e["eventId"] for e in events}) == len(events)
    # Event ids are stable from call to call.
    again = logs.filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
    assert {e["eventId"] for e in again} <= {e["eventId"] for e in events}

    with pytest.raises(ClientError) as excinfo:
        logs.filter_log_events(logGroupName=group, nextToken="garbage!")
    assert _error(excinfo) == ("InvalidParameterException", "The specified nextToken is invalid.")


def test_validation_errors(server: Server, logs: Any) -> None:
    raw = server.client("logs", client_validation=False)
    with pytest.raises(ClientError) as excinfo:
        raw.describe_log_groups(limit=0)
    assert _error(excinfo) == (
        "InvalidParameterException",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint:"
        " Member must have value greater than or equal to 1",
    )
    group = _name("valid")
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as excinfo:
        logs.describe_log_streams(
            logGroupName=group, logStreamNamePrefix="a", orderBy="LastEventTime"
        )
    assert _error(excinfo) == (
        "InvalidParameterException",
        "Cannot order by LastEventTime with a logStreamNamePrefix.",
    )
    with pytest.raises(ClientError) as excinfo:
        logs.filter_log_events(logGroupName=group, logGroupIdentifier=group)
    assert _error(excinfo)[0] == "InvalidParameterException"


def test_describe_log_streams_order_and_pages(logs: Any) -> None:
    group = _name("streams")
    logs.create_log_group(logGroupName=group)
    now = _now_ms()
    for i, stream in enumerate(("c", "a", "b")):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": now - 1000 + i, "message": stream}],
        )

    def names(**kw: Any) -> list[str]:
        pages = logs.get_paginator("describe_log_streams").paginate(
            logGroupName=group, PaginationConfig={"PageSize": 2}, **kw
        )
        return [s["logStreamName"] for p in pages for s in p["logStreams"]]

    assert names() == ["a", "b", "c"]
    assert names(descending=True) == ["c", "b", "a"]
    assert names(orderBy="LastEventTime") == ["c", "a", "b"]
    assert names(orderBy="LastEventTime", descending=True) == ["b", "a", "c"]
    assert names(logStreamNamePrefix="b") == ["b"]


def test_tail_follow_sees_lines_as_they_are_written(ecs: Any, logs: Any) -> None:
    """What `aws logs tail GROUP --follow` does: poll FilterLogEvents from startTime, follow
    nextToken, then restart from the newest timestamp seen and drop events already seen."""
    group = _name("tail")
    start = _now_ms()
    arn = run_task(
        ecs,
        taskdef(
            "logs-api-tail",
            container(
                "app",
                "for i in $(seq 1 12); do echo tick-$i; sleep 0.2; done",
                logConfiguration=_awslogs(group),
            ),
        ),
    )
    wait_for(ecs, arn, lambda t: t["lastStatus"] in ("RUNNING", "STOPPED"))

    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start, "interleaved": True}
    seen_ids: dict[int, set[str]] = defaultdict(set)
    received: list[str] = []
    counts_while_running: list[int] = []
    deadline = time.monotonic() + 20
    while "tick-12" not in received and time.monotonic() < deadline:
        try:
            response = logs.filter_log_events(**kwargs)
        except ClientError as e:  # the group appears when the task starts
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            time.sleep(0.1)
            continue
        for event in response["events"]:
            if event["eventId"] not in seen_ids[event["timestamp"]]:
                seen_ids[event["timestamp"]].add(event["eventId"])
                received.append(event["message"])
        if seen_ids:
            newest = max(seen_ids)
            seen_ids = defaultdict(set, {newest: seen_ids[newest]})
        if "nextToken" in response:
            kwargs["nextToken"] = response["nextToken"]
        else:
            kwargs.pop("nextToken", None)
            if seen_ids:
                kwargs["startTime"] = max(seen_ids)
            counts_while_running.append(len(received))
            time.sleep(0.15)
    assert received == [f"tick-{i}" for i in range(1, 13)]
    # Lines arrived over several polls while the task ran, not all at once at the end.
    assert len({c for c in counts_while_running if 0 < c < 12}) >= 3
    wait_stopped(ecs, arn)
