"""The SQL of the CloudWatch Logs event queries (FilterLogEvents' and GetLogEvents' reads of
``log_events``, :meth:`ecslocal.store.Store.query_log_events` and ``stream_events``)."""

from __future__ import annotations

from typing import Any

#: GetLogEvents' rows: (timestamp, seq, ingestion_time, message).
StreamEvent = tuple[int, int, int, str]


def log_events_sql(
    columns: str,
    group: str,
    min_seq: int,
    limit: int,
    streams: list[str] | None,
    prefix: str | None,
    start: int | None,
    end: int | None,
    after: tuple[int, int] | None,
    before: tuple[int, int] | None,
    descending: bool,
) -> tuple[str, list[Any]]:
    """The query of a group's non-empty events (see :meth:`Store.query_log_events`)."""
    sql = f"SELECT {columns} FROM log_events WHERE log_group = ? AND seq > ? AND message != ''"
    args: list[Any] = [group, min_seq]
    if streams is not None:
        sql += f" AND log_stream IN ({', '.join('?' * len(streams))})"
        args += streams
    if prefix:
        sql += " AND substr(log_stream, 1, ?) = ?"
        args += [len(prefix), prefix]
    if start is not None:
        sql += " AND timestamp >= ?"
        args.append(start)
    if end is not None:
        sql += " AND timestamp <= ?"
        args.append(end)
    if after is not None:
        sql += " AND (timestamp, seq) > (?, ?)"
        args += after
    if before is not None:
        sql += " AND (timestamp, seq) < (?, ?)"
        args += before
    order = " DESC" if descending else ""
    sql += f" ORDER BY timestamp{order}, seq{order} LIMIT ?"
    args.append(limit)
    return sql, args
