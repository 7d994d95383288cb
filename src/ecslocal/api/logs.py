"""Amazon CloudWatch Logs (AWS JSON 1.1, target prefix Logs_20140328) over the runtime's
captured container output.

A container with the ``awslogs`` driver writes to its group's stream
``<prefix>/<container>/<task-id>``; such streams exist through their events alone, beside the
ones CreateLogStream makes. Events are ordered by timestamp, then arrival. Filter patterns
support CloudWatch's term syntax (see :func:`compile_filter_pattern`) and ``%regex%``; JSON
(``{ $.x = 1 }``) and space-delimited (``[a, b]``) patterns are refused with
InvalidParameterException.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from ecslocal import arns
from ecslocal.api.protocols.json import Encoded
from ecslocal.api.service import Handler, Service
from ecslocal.auth.caller import Caller
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.errors import AwsError, invalid_parameter
from ecslocal.storage.log_events import StreamEvent
from ecslocal.store import LogEvent, Store

RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
DAY_MS = 86_400_000
#: Events FilterLogEvents examines per call before it answers with what it has and a nextToken
#: (AWS, too, may return fewer events than the limit, even none, with a nextToken).
SCAN_BUDGET = 200_000
ZERO_POSITION = (0, 0)


def _group_not_found() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log group does not exist.")


def _stream_not_found() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log stream does not exist.")


def _invalid_token() -> AwsError:
    return invalid_parameter("The specified nextToken is invalid.")


def _encode_token(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise _invalid_token() from None


def _page(items: list[Any], p: dict[str, Any], default_limit: int) -> tuple[list[Any], str | None]:
    """Offset pagination with an opaque token (DescribeLogGroups, DescribeLogStreams)."""
    start = 0
    if p.get("nextToken"):
        start = _decode_token(p["nextToken"])
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise _invalid_token()
    limit = p.get("limit") or default_limit
    end = start + limit
    return items[start:end], (_encode_token(end) if end < len(items) else None)


def _events_json(rows: list[StreamEvent], forward_token: str, backward_token: str) -> bytes:
    """GetLogEvents' answer, byte for byte what ``json.dumps`` makes of ``{"events":
    [{"timestamp", "message", "ingestionTime"}, ...], "nextForwardToken",
    "nextBackwardToken"}`` (every member is in the output shape, none is null: the columns
    are NOT NULL), written directly: json's encoder walks a dict's items through a new list
    for every event, most of the cost of 100 events. Strings are escaped by the encoder's own
    function (``ensure_ascii``, its default); ints are written as it writes them."""
    events = ", ".join(
        [
            f'{{"timestamp": {timestamp}, "message": {_json_string(message)},'
            f' "ingestionTime": {ingested}}}'
            for timestamp, _, ingested, message in rows
        ]
    )
    tokens = f'"nextForwardToken": {_json_string(forward_token)}, "nextBackwardToken": '
    return f'{{"events": [{events}], {tokens}{_json_string(backward_token)}}}'.encode()


def _position_digits(position: tuple[int, int]) -> str:
    """56 digits naming an event's place: its timestamp, then its sequence number."""
    return f"{position[0]:020d}{position[1]:036d}"


def _event_id(event: LogEvent) -> str:
    return _position_digits((event.timestamp, event.seq))


_TERM = re.compile(r'\s*([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


def compile_filter_pattern(pattern: str | None) -> Callable[[str], bool]:
    """A predicate on messages for a CloudWatch filter pattern.

    * empty (or only whitespace, or ``" "``): every event;
    * ``%regex%``: events the regular expression finds a match in;
    * terms, case-sensitive substrings, a ``"quoted phrase"`` being one term: every plain term
      must occur (AND), at least one ``?term`` when there are any (OR), and no ``-term``
      (a pattern of only ``-terms`` matches the events that contain none of them).
    """
    text = (pattern or "").strip()
    if not text:
        return lambda message: True
    if text[0] in "{[":
        raise invalid_parameter(
            "JSON and space-delimited filter patterns are not supported by ecslocal;"
            " use terms, quoted phrases, ?terms, -terms or %regex%."
        )
    if len(text) > 1 and text[0] == "%" and text[-1] == "%":
        try:
            regex = re.compile(text[1:-1])
        except re.error:
            raise invalid_parameter(f"Invalid regex in filter pattern: {text}") from None
        return lambda message: regex.search(message) is not None
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or m.end() == pos:
            raise invalid_parameter(f"Invalid filter pattern: {text}")
        pos = m.end()
        operator, quoted, bare = m.groups()
        term = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        if bare is not None and '"' in bare:
            raise invalid_parameter(f"Invalid filter pattern: {text}")
        if not term.strip():
            continue  # '" "' matches everything
        {"": required, "?": optional, "-": excluded}[operator].append(term)

    def match(message: str) -> bool:
        return (
            all(t in message for t in required)
            and (not optional or any(t in message for t in optional))
            and not any(t in message for t in excluded)
        )

    return match


class LogsApi:
    def __init__(self, config: Config, store: Store, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.arn_prefix = arns.build("logs", config.region, config.account_id, "log-group:")

    def service(self) -> Service:
        handlers: dict[str, Handler] = {
            "CreateLogGroup": self.create_log_group,
            "DeleteLogGroup": self.delete_log_group,
            "DescribeLogGroups": self.describe_log_groups,
            "PutRetentionPolicy": self.put_retention_policy,
            "DeleteRetentionPolicy": self.delete_retention_policy,
            "PutLogGroupDeletionProtection": self.put_log_group_deletion_protection,
            "CreateLogStream": self.create_log_stream,
            "DescribeLogStreams": self.describe_log_streams,
            "PutLogEvents": self.put_log_events,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        }
        return Service(
            "logs",
            handlers,
            signing_name="logs",
            target_prefix="Logs_20140328",
            validation_error=("InvalidParameterException", 400),
        )

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    # -- groups -----------------------------------------------------------------------------
    def _name_of(self, identifier: str) -> str:
        """A log group name from a name or an ARN (with or without the trailing ``:*``)."""
        if identifier.startswith("arn:"):
            _, sep, name = identifier.partition(":log-group:")
            if not sep or not name:
                raise invalid_parameter(f"Invalid log group ARN: {identifier}")
            return name.removesuffix(":*")
        return identifier

    def _group(self, p: dict[str, Any]) -> dict[str, Any]:
        """The group named by logGroupName or logGroupIdentifier (exactly one of them)."""
        name, identifier = p.get("logGroupName"), p.get("logGroupIdentifier")
        if name is not None and identifier is not None:
            raise invalid_parameter(
                "LogGroup name and LogGroup ARN are mutually exclusive parameters."
            )
        if name is None and identifier is None:
            raise invalid_parameter("Either logGroupName or logGroupIdentifier is required.")
        group = self.store.get_log_group(name if name is not None else self._name_of(identifier))
        if group is None:
            raise _group_not_found()
        return group

    def _since_ms(self, group: dict[str, Any]) -> int:
        """The oldest timestamp the group's retention keeps (0 without a retention policy)."""
        days = group["meta"].get("retentionInDays")
        return max(0, self._now_ms() - days * DAY_MS) if days else 0

    def _describe_group(self, group: dict[str, Any]) -> dict[str, Any]:
        meta = group["meta"]
        return {
            "logGroupName": group["name"],
            "creationTime": int(group["created_at"] * 1000),
            "retentionInDays": meta.get("retentionInDays"),
            "metricFilterCount": 0,
            "arn": f"{self.arn_prefix}{group['name']}:*",
            "logGroupArn": f"{self.arn_prefix}{group['name']}",
            "storedBytes": self.store.log_group_stored_bytes(
                group["name"], group["min_seq"], self._since_ms(group)
            ),
            "kmsKeyId": meta.get("kmsKeyId"),
            "logGroupClass": meta.get("logGroupClass", "STANDARD"),
            "deletionProtectionEnabled": meta.get("deletionProtectionEnabled", False),
        }

    def create_log_group(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        meta = {
            "logGroupClass": p.get("logGroupClass") or "STANDARD",
            "kmsKeyId": p.get("kmsKeyId"),
            "deletionProtectionEnabled": bool(p.get("deletionProtectionEnabled")),
            "tags": p.get("tags") or {},
        }
        if not self.store.create_log_group(p["logGroupName"], self.clock.time(), meta):
            raise AwsError(
                "ResourceAlreadyExistsException", "The specified log group already exists"
            )
        return {}

    def delete_log_group(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        group = self.store.get_log_group(p["logGroupName"])
        if group is None:
            raise _group_not_found()
        if group["meta"].get("deletionProtectionEnabled"):
            raise AwsError(
                "ValidationException",
                "Deletion protection is enabled for the log group; disable it before deleting"
                " the log group.",
            )
        self.store.delete_log_group(group["name"])
        return {}

    def describe_log_groups(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        prefix, pattern = p.get("logGroupNamePrefix"), p.get("logGroupNamePattern")
        if prefix is not None and pattern is not None:
            raise invalid_parameter(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
            )
        groups = self.store.list_log_groups()
        if p.get("logGroupIdentifiers"):
            wanted = {self._name_of(i) for i in p["logGroupIdentifiers"]}
            groups = [g for g in groups if g["name"] in wanted]
        if prefix:
            groups = [g for g in groups if g["name"].startswith(prefix)]
        if pattern:
            groups = [g for g in groups if pattern in g["name"]]
        if p.get("logGroupClass"):
            wanted_class = p["logGroupClass"]
            groups = [
                g for g in groups if g["meta"].get("logGroupClass", "STANDARD") == wanted_class
            ]
        page, token = _page(groups, p, 50)
        described = [self._describe_group(g) for g in page]
        if pattern is not None:
            # With logGroupNamePattern AWS answers with these three fields only.
            keep = ("arn", "creationTime", "logGroupName")
            described = [{k: d[k] for k in keep} for d in described]
        return {"logGroups": described, "nextToken": token}

    def put_retention_policy(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        days = p["retentionInDays"]
        if days not in RETENTION_DAYS:
            raise invalid_parameter(
                f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to"
                " satisfy constraint: Member must satisfy enum value set:"
                f" [{', '.join(map(str, RETENTION_DAYS))}]"
            )
        return self._update_meta(p["logGroupName"], retentionInDays=days)

    def delete_retention_policy(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return self._update_meta(p["logGroupName"], retentionInDays=None)

    def put_log_group_deletion_protection(
        self, p: dict[str, Any], caller: Caller
    ) -> dict[str, Any]:
        return self._update_meta(
            self._name_of(p["logGroupIdentifier"]),
            deletionProtectionEnabled=p["deletionProtectionEnabled"],
        )

    def _update_meta(self, name: str, **changes: Any) -> dict[str, Any]:
        group = self.store.get_log_group(name)
        if group is None:
            raise _group_not_found()
        meta = {**group["meta"], **changes}
        self.store.set_log_group_meta(name, {k: v for k, v in meta.items() if v is not None})
        return {}

    # -- streams ----------------------------------------------------------------------------
    def create_log_stream(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        group = self._group(p)
        name = p["logStreamName"]
        if self.store.log_stream_exists(group["name"], name, group["min_seq"]):
            raise AwsError(
                "ResourceAlreadyExistsException", "The specified log stream already exists"
            )
        self.store.create_log_stream(group["name"], name, self._now_ms())
        return {}

    def describe_log_streams(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        order_by = p.get("orderBy", "LogStreamName")
        prefix = p.get("logStreamNamePrefix")
        if prefix is not None and order_by == "LastEventTime":
            raise invalid_parameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
        group = self._group(p)
        rows = self.store.log_streams(group["name"], group["min_seq"], self._since_ms(group))
        if prefix:
            rows = [r for r in rows if r[0].startswith(prefix)]
        if order_by == "LastEventTime":
            rows.sort(key=lambda r: (r[3] if r[3] is not None else -1, r[0]))
        if p.get("descending"):
            rows.reverse()
        page, token = _page(rows, p, 50)
        arn = f"{self.arn_prefix}{group['name']}:log-stream:"
        streams = [
            {
                "logStreamName": name,
                "creationTime": created,
                "firstEventTimestamp": first,
                "lastEventTimestamp": last,
                "lastIngestionTime": ingested,
                "arn": arn + name,
                "storedBytes": 0,  # AWS has reported 0 for streams since June 2019
            }
            for name, created, first, last, ingested in page
        ]
        return {"logStreams": streams, "nextToken": token}

    # -- events -----------------------------------------------------------------------------
    def put_log_events(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        group = self._group(p)
        stream = p["logStreamName"]
        if not self.store.log_stream_exists(group["name"], stream, group["min_seq"]):
            raise _stream_not_found()
        events = p["logEvents"]
        stamps = [e["timestamp"] for e in events]
        if stamps != sorted(stamps):
            raise invalid_parameter(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        now = self._now_ms()
        # The batch is in order: too old and expired events lead it, too new ones trail it.
        too_old = bisect.bisect_left(stamps, now - 14 * DAY_MS)
        expired = bisect.bisect_left(stamps, self._since_ms(group))
        too_new = bisect.bisect_right(stamps, now + 2 * 3_600_000)
        valid = events[max(too_old, expired) : too_new]
        if valid and valid[-1]["timestamp"] - valid[0]["timestamp"] > DAY_MS:
            raise invalid_parameter(
                "The batch of log events in a single PutLogEvents request cannot span more"
                " than 24 hours."
            )
        self.store.append_logs(
            ("", "", "api", group["name"], stream, e["timestamp"], now, e["message"]) for e in valid
        )
        rejected = {
            "tooNewLogEventStartIndex": too_new if too_new < len(events) else None,
            "tooOldLogEventEndIndex": too_old - 1 if too_old else None,
            "expiredLogEventEndIndex": expired - 1 if expired else None,
        }
        out: dict[str, Any] = {"nextSequenceToken": _position_digits((now, len(events)))}
        if any(v is not None for v in rejected.values()):
            out["rejectedLogEventsInfo"] = rejected
        return out

    def _check_stream(self, group: dict[str, Any], stream: str) -> None:
        if not self.store.log_stream_exists(group["name"], stream, group["min_seq"]):
            raise _stream_not_found()

    def get_log_events(self, p: dict[str, Any], caller: Caller) -> Encoded:
        """Tokens are ``f/`` or ``b/`` and 56 digits naming an event's (timestamp, seq): a
        forward token reads the events after it, a backward token the ``limit`` before it.
        Without newer events the forward token comes back unchanged: the end for clients."""
        group = self._group(p)
        stream = p["logStreamName"]
        token = p.get("nextToken")
        position: tuple[int, int] | None = None
        if token is not None:
            m = re.fullmatch(r"([fb])/(\d{20})(\d{36})", token)
            if m is None:
                self._check_stream(group, stream)  # a missing stream is said first
                raise _invalid_token()
            position = (int(m.group(2)), int(m.group(3)))
        end = p.get("endTime")
        query: dict[str, Any] = {
            "start": max(p.get("startTime") or 0, self._since_ms(group)),
            "end": end - 1 if end is not None else None,  # endTime is exclusive here
        }
        limit = p.get("limit") or 10_000
        forward = token is None and p.get("startFromHead", False)
        if token is not None:
            forward = token.startswith("f/")
        if forward:
            rows = self.store.stream_events(
                group["name"], group["min_seq"], limit, stream, after=position, **query
            )
        else:
            rows = self.store.stream_events(
                group["name"],
                group["min_seq"],
                limit,
                stream,
                before=position,
                descending=True,
                **query,
            )
            rows.reverse()
        if not rows:
            # An event of the stream (seq > min_seq) proves it exists: only an empty answer
            # asks (the same EXISTS query, one fewer a page of events).
            self._check_stream(group, stream)
        here = _position_digits(position or ZERO_POSITION)
        forward_token = "f/" + (_position_digits((rows[-1][0], rows[-1][1])) if rows else here)
        backward_token = "b/" + (_position_digits((rows[0][0], rows[0][1])) if rows else here)
        return Encoded(_events_json(rows, forward_token, backward_token))

    def filter_log_events(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """Events of the group's streams in (timestamp, seq) order, startTime and endTime
        inclusive; ``nextToken`` only when more events may follow."""
        names, prefix = p.get("logStreamNames"), p.get("logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise invalid_parameter(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters."
            )
        group = self._group(p)
        match = compile_filter_pattern(p.get("filterPattern"))
        after: tuple[int, int] | None = None
        if p.get("nextToken"):
            decoded = _decode_token(p["nextToken"])
            if not (
                isinstance(decoded, list)
                and len(decoded) == 2
                and all(type(x) is int for x in decoded)
            ):
                raise _invalid_token()
            after = (decoded[0], decoded[1])
        limit = p.get("limit") or 10_000
        batch = min(max(limit + 1, 1000), 10_001)
        query: dict[str, Any] = {
            "streams": names,
            "prefix": prefix,
            "start": max(p.get("startTime") or 0, self._since_ms(group)),
            "end": p.get("endTime"),
        }
        matched: list[LogEvent] = []
        scanned = 0
        token: str | None = None
        while True:
            rows = self.store.query_log_events(
                group["name"], group["min_seq"], batch, after=after, **query
            )
            for event in rows:
                after = (event.timestamp, event.seq)
                if match(event.message):
                    matched.append(event)
                    if len(matched) > limit:
                        break
            scanned += len(rows)
            if len(matched) > limit:
                matched = matched[:limit]
                token = _encode_token([matched[-1].timestamp, matched[-1].seq])
                break
            if len(rows) < batch:
                break
            if scanned >= SCAN_BUDGET and after is not None:
                token = _encode_token(list(after))
                break
        return {
            "events": [
                {
                    "logStreamName": e.log_stream,
                    "timestamp": e.timestamp,
                    "message": e.message,
                    "ingestionTime": e.ingestion_time,
                    "eventId": _event_id(e),
                }
                for e in matched
            ],
            "searchedLogStreams": [],
            "nextToken": token,
        }
