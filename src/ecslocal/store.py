"""SQLite state (WAL): clusters, task definitions, tasks and captured log lines.

The store is the daemon's memory across restarts. It keeps documents as JSON in the shapes the
ECS API returns, plus the few columns that are queried. All calls come from the daemon's event
loop thread; writes are small transactions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecslocal.storage.db import Database, Schema, StorageError
from ecslocal.storage.log_events import StreamEvent, log_events_sql
from ecslocal.task_index import (
    SERVICE_GROUP_PREFIX,
    STOPPED,
    TaskIndex,
    TaskSummary,
    summary_of,
)

#: Clusters, task definitions and tasks. Version 1 is the schema unversioned databases have.
STORE_SCHEMA = Schema(
    "store",
    [
        """
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS task_definitions (
    family TEXT NOT NULL,
    revision INTEGER NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (family, revision)
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    family TEXT NOT NULL,
    started_by TEXT,
    desired_status TEXT NOT NULL,
    last_status TEXT NOT NULL,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    runtime TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS tasks_by_cluster ON tasks (cluster, desired_status, created_at);
"""
    ],
)

#: Captured log lines and the CloudWatch Logs API's groups and streams.
LOGS_SCHEMA = Schema(
    "logs",
    [
        """
CREATE TABLE IF NOT EXISTS log_groups (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS log_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    container TEXT NOT NULL,
    source TEXT NOT NULL,
    log_group TEXT,
    log_stream TEXT,
    timestamp INTEGER NOT NULL,
    ingestion_time INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_by_task ON log_events (task_id, seq);
CREATE INDEX IF NOT EXISTS log_events_by_stream ON log_events (log_group, log_stream, seq);
CREATE INDEX IF NOT EXISTS log_events_by_group_time ON log_events (log_group, timestamp, seq);
CREATE INDEX IF NOT EXISTS log_events_by_stream_time
    ON log_events (log_group, log_stream, timestamp, seq);
CREATE TABLE IF NOT EXISTS log_streams (
    log_group TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (log_group, name)
);
-- CloudWatch Logs settings of a group; its events are those with seq > min_seq (a deleted and
-- re-created group starts empty while the task's captured lines stay for `ecslocal logs`).
CREATE TABLE IF NOT EXISTS log_group_meta (
    name TEXT PRIMARY KEY,
    min_seq INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL DEFAULT '{}'
);
""",
        # 2: how far each container's spool file (runtime/backends/spool.py) is stored,
        # committed in the same transaction as the events read from it.
        """
CREATE TABLE IF NOT EXISTS log_spools (
    name TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    container TEXT NOT NULL,
    source TEXT NOT NULL,
    offset INTEGER NOT NULL DEFAULT 0
)
""",
    ],
)


@dataclass(frozen=True)
class LogEvent:
    seq: int
    task_id: str
    container: str
    source: str
    log_group: str | None
    log_stream: str | None
    timestamp: int
    ingestion_time: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "container": self.container,
            "source": self.source,
            "timestamp": self.timestamp,
            "message": self.message,
            "logGroup": self.log_group,
            "logStream": self.log_stream,
        }


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        #: The daemon's one database; other components register their tables on it.
        self.db = Database(path)
        try:
            self.db.register(STORE_SCHEMA)
            self.db.register(LOGS_SCHEMA)
        except StorageError:
            self.db.close()
            raise
        self._clusters: dict[str, str] = {}
        #: Log group rows by name (every Logs call reads its group; the four methods that
        #: write a group's rows drop its entry first).
        self._log_groups: dict[str, tuple[Any, ...]] = {}
        #: The tasks' summaries (ListTasks pages, the retention sweep), loaded once.
        self.tasks = TaskIndex()
        self._load_task_index()

    def close(self) -> None:
        self.db.close()

    # -- clusters ---------------------------------------------------------------------------
    def put_cluster(self, name: str, body: dict[str, Any]) -> None:
        text = json.dumps(body)
        self.db.execute("INSERT OR REPLACE INTO clusters (name, body) VALUES (?, ?)", (name, text))
        self._clusters[name] = text

    def get_cluster(self, name: str) -> dict[str, Any] | None:
        # Every ECS call resolves its cluster: the row's JSON is kept in memory after the
        # first read (each caller still gets its own parsed copy).
        text = self._clusters.get(name)
        if text is None:
            row = self.db.execute("SELECT body FROM clusters WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            text = self._clusters[name] = row[0]
        return json.loads(text)  # type: ignore[no-any-return]

    def list_clusters(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT body FROM clusters ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_cluster(self, name: str) -> None:
        self.db.execute("DELETE FROM clusters WHERE name = ?", (name,))
        self._clusters.pop(name, None)

    # -- task definitions -------------------------------------------------------------------
    def next_revision(self, family: str) -> int:
        row = self.db.execute(
            "SELECT MAX(revision) FROM task_definitions WHERE family = ?", (family,)
        ).fetchone()
        return (row[0] or 0) + 1

    def put_task_definition(
        self, body: dict[str, Any], tags: list[dict[str, str]] | None = None
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO task_definitions (family, revision, status, body, tags)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                body["family"],
                body["revision"],
                body["status"],
                json.dumps(body),
                json.dumps(tags or []),
            ),
        )

    def get_task_definition(
        self, family: str, revision: int | None = None
    ) -> tuple[dict[str, Any], list[dict[str, str]]] | None:
        if revision is None:
            # Family alone means the latest ACTIVE revision (DescribeTaskDefinition, RunTask).
            row = self.db.execute(
                "SELECT body, tags FROM task_definitions WHERE family = ? AND status = 'ACTIVE'"
                " ORDER BY revision DESC LIMIT 1",
                (family,),
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT body, tags FROM task_definitions WHERE family = ? AND revision = ?",
                (family, revision),
            ).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def list_task_definitions(
        self, family: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT body FROM task_definitions WHERE 1=1"
        args: list[Any] = []
        if family:
            sql += " AND family = ?"
            args.append(family)
        if status:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY family, revision"
        return [json.loads(r[0]) for r in self.db.execute(sql, args).fetchall()]

    def task_definition_families(self, prefix: str = "") -> list[tuple[str, bool]]:
        """(family, has an ACTIVE revision) of the families starting with ``prefix`` that have
        an ACTIVE or INACTIVE revision, by name (deleted revisions keep only their number)."""
        rows = self.db.execute(
            "SELECT family, MAX(status = 'ACTIVE') FROM task_definitions"
            " WHERE status IN ('ACTIVE', 'INACTIVE') AND substr(family, 1, ?) = ?"
            " GROUP BY family ORDER BY family",
            (len(prefix), prefix),
        ).fetchall()
        return [(family, bool(active)) for family, active in rows]

    # -- tasks ------------------------------------------------------------------------------
    # Every task write goes through put_task, which keeps ``self.tasks`` (the in-memory index
    # ListTasks pages from) in step with the rows; reads by id are primary-key lookups.
    def _load_task_index(self) -> None:
        """The index of the stored tasks (json_extract reads the few fields it needs in
        SQLite's C code: no document is parsed in Python at start-up)."""
        rows = self.db.execute(
            "SELECT task_id, cluster, family, started_by, desired_status, last_status,"
            " created_at, json_extract(body, '$.taskArn'), json_extract(body, '$.launchType'),"
            " json_extract(body, '$.group'), json_extract(body, '$.stoppedAt') FROM tasks"
        ).fetchall()
        for row in rows:
            task_id, cluster, family, started_by, desired, last, created = row[:7]
            arn, launch_type, group, stopped_at = row[7:]
            group = group or ""
            self.tasks.put(
                TaskSummary(
                    task_id=task_id,
                    arn=arn,
                    cluster=cluster,
                    family=family,
                    started_by=started_by,
                    desired_status=desired,
                    last_status=last,
                    launch_type=launch_type,
                    service_name=group[len(SERVICE_GROUP_PREFIX) :]
                    if group.startswith(SERVICE_GROUP_PREFIX)
                    else None,
                    created_at=float(created),
                    stopped_at=float(stopped_at if stopped_at is not None else created)
                    if last == STOPPED
                    else None,
                )
            )

    def put_task(self, task_id: str, body: dict[str, Any], runtime: dict[str, Any]) -> None:
        """The task's summary in the index, then its row. The index follows the engine's
        memory even when the write is refused (:class:`StorageError`: the agent keeps the task
        live and retries), so nothing cached from the previous summary is served."""
        summary = summary_of(task_id, body)
        known = self.tasks.get(task_id) is not None
        self.tasks.put(summary)
        columns = (
            summary.cluster,
            summary.family,
            summary.started_by,
            summary.desired_status,
            summary.last_status,
            summary.created_at,
            json.dumps(body),
            json.dumps(runtime),
        )
        try:
            # A known task's row is updated in place (still one commit a change): INSERT OR
            # REPLACE deletes and re-inserts it, both indexes too, 4-5x an UPDATE's work.
            updated = known and (
                self.db.execute(
                    "UPDATE tasks SET cluster = ?, family = ?, started_by = ?,"
                    " desired_status = ?, last_status = ?, created_at = ?, body = ?, runtime = ?"
                    " WHERE task_id = ?",
                    (*columns, task_id),
                ).rowcount
                == 1
            )
            if not updated:
                self.db.execute(
                    "INSERT OR REPLACE INTO tasks (task_id, cluster, family, started_by,"
                    " desired_status, last_status, created_at, body, runtime)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (task_id, *columns),
                )
        except StorageError:
            if not known:  # a task never written is not known (RunTask fails)
                self.tasks.remove(task_id)
            raise

    def put_runtime_record(self, task_id: str, container: str, record: dict[str, Any]) -> None:
        """Replace one container's recovery record in a running task's stored row (the
        backend completes it after the engine stored it: the namespace init's identity)
        without a new version of the task. A stopped or unknown task is left alone. Container
        names are ``[A-Za-z0-9_-]`` (RegisterTaskDefinition), safe in a JSON path."""
        self.db.execute(
            "UPDATE tasks SET runtime = json_set(runtime, ?, json(?))"
            " WHERE task_id = ? AND last_status != 'STOPPED'",
            (f'$."{container}"', json.dumps(record), task_id),
        )

    def get_task(self, task_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        if self.tasks.get(task_id) is None:
            return None  # not stored: no SQLite read for an unknown id
        row = self.db.execute(
            "SELECT body, runtime FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def forget_tasks(self, task_ids: list[str]) -> None:
        """Delete the tasks' rows (their log events stay: CloudWatch Logs keeps a task's logs
        independently of ECS forgetting the task)."""
        with self.db.transaction():
            self.db.executemany("DELETE FROM tasks WHERE task_id = ?", [(t,) for t in task_ids])
        for task_id in task_ids:
            self.tasks.remove(task_id)

    def list_tasks(
        self,
        cluster: str | None = None,
        desired_status: str | None = None,
        family: str | None = None,
        started_by: str | None = None,
        not_stopped: bool = False,
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Full documents, by createdAt (start-up recovery and the cluster's task counts;
        ListTasks pages from the index instead)."""
        if not_stopped and cluster is not None and not (desired_status or family or started_by):
            # A cluster's active tasks (DescribeClusters' counts, DeleteCluster's check): from
            # the index, whatever the stopped history holds.
            for summary in self.tasks.active(cluster):
                found = self.get_task(summary.task_id)
                if found is not None:
                    yield found
            return
        sql = "SELECT body, runtime FROM tasks WHERE 1=1"
        args: list[Any] = []
        for column, value in (
            ("cluster", cluster),
            ("desired_status", desired_status),
            ("family", family),
            ("started_by", started_by),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if not_stopped:
            sql += " AND last_status != 'STOPPED'"
        sql += " ORDER BY created_at, task_id"
        for body, runtime in self.db.execute(sql, args).fetchall():
            yield json.loads(body), json.loads(runtime)

    # -- logs -------------------------------------------------------------------------------
    def ensure_log_group(self, name: str, created_at: float) -> None:
        self._log_groups.pop(name, None)
        self.db.execute(
            "INSERT OR IGNORE INTO log_groups (name, created_at) VALUES (?, ?)", (name, created_at)
        )

    def append_logs(
        self,
        rows: Iterable[tuple[Any, ...]],
        spools: Iterable[tuple[str, str, str, str, int]] = (),
        forget_spools: Iterable[str] = (),
    ) -> None:
        """Rows: (task_id, container, source, log_group, log_stream, timestamp, ingestion, msg);
        ``spools``: (name, task_id, container, source, offset) — how far each spool file is
        stored, in the same transaction as the events read from it; ``forget_spools``: names of
        spool files that are fully stored and deleted."""
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO log_events (task_id, container, source, log_group, log_stream,"
                " timestamp, ingestion_time, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.db.executemany(
                "INSERT INTO log_spools (name, task_id, container, source, offset)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET offset = excluded.offset",
                spools,
            )
            self.db.executemany(
                "DELETE FROM log_spools WHERE name = ?", [(name,) for name in forget_spools]
            )

    def spool_offsets(self) -> dict[str, tuple[str, str, str, int]]:
        """Every spool file the store knows: name -> (task_id, container, source, offset)."""
        rows = self.db.execute(
            "SELECT name, task_id, container, source, offset FROM log_spools"
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def last_log_timestamp(self, task_id: str, container: str, source: str) -> int:
        row = self.db.execute(
            "SELECT MAX(timestamp) FROM log_events WHERE task_id = ? AND container = ?"
            " AND source = ?",
            (task_id, container, source),
        ).fetchone()
        return int(row[0] or 0)

    def task_logs(
        self, task_id: str, after_seq: int = 0, container: str | None = None, limit: int = 1000
    ) -> list[LogEvent]:
        sql = "SELECT * FROM log_events WHERE task_id = ? AND seq > ?"
        args: list[Any] = [task_id, after_seq]
        if container:
            sql += " AND container = ?"
            args.append(container)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [LogEvent(*row) for row in self.db.execute(sql, args).fetchall()]

    # CloudWatch Logs API: groups, their settings and streams; events by (timestamp, seq).
    _GROUP_SQL = (
        "SELECT g.name, g.created_at, COALESCE(m.min_seq, 0), COALESCE(m.body, '{}')"
        " FROM log_groups g LEFT JOIN log_group_meta m ON m.name = g.name"
    )

    @staticmethod
    def _log_group_row(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"name": row[0], "created_at": row[1], "min_seq": row[2], "meta": json.loads(row[3])}

    def create_log_group(self, name: str, created_at: float, meta: dict[str, Any]) -> bool:
        """Create an empty group; False if it exists already."""
        self._log_groups.pop(name, None)
        with self.db.transaction():
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO log_groups (name, created_at) VALUES (?, ?)",
                (name, created_at),
            )
            if cursor.rowcount == 0:
                return False
            self.db.execute(
                "INSERT OR REPLACE INTO log_group_meta (name, min_seq, body)"
                " VALUES (?, (SELECT COALESCE(MAX(seq), 0) FROM log_events), ?)",
                (name, json.dumps(meta)),
            )
        return True

    def get_log_group(self, name: str) -> dict[str, Any] | None:
        row = self._log_groups.get(name)
        if row is None:
            row = self.db.execute(self._GROUP_SQL + " WHERE g.name = ?", (name,)).fetchone()
            if row is None:
                return None
            self._log_groups[name] = row
        return self._log_group_row(row)

    def list_log_groups(self) -> list[dict[str, Any]]:
        rows = self.db.execute(self._GROUP_SQL + " ORDER BY g.name").fetchall()
        return [self._log_group_row(r) for r in rows]

    def set_log_group_meta(self, name: str, meta: dict[str, Any]) -> None:
        self._log_groups.pop(name, None)
        self.db.execute(
            "INSERT INTO log_group_meta (name, body) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            (name, json.dumps(meta)),
        )

    def delete_log_group(self, name: str) -> None:
        """Forget the group, its streams and PutLogEvents' events; hide the tasks' lines."""
        self._log_groups.pop(name, None)
        with self.db.transaction():
            self.db.execute("DELETE FROM log_groups WHERE name = ?", (name,))
            self.db.execute("DELETE FROM log_streams WHERE log_group = ?", (name,))
            self.db.execute("DELETE FROM log_events WHERE log_group = ? AND task_id = ''", (name,))
            self.db.execute(
                "INSERT OR REPLACE INTO log_group_meta (name, min_seq, body)"
                " VALUES (?, (SELECT COALESCE(MAX(seq), 0) FROM log_events), '{}')",
                (name,),
            )

    def log_group_stored_bytes(self, name: str, min_seq: int, since_ms: int) -> int:
        row = self.db.execute(
            "SELECT COALESCE(SUM(LENGTH(CAST(message AS BLOB))), 0) FROM log_events"
            " WHERE log_group = ? AND seq > ? AND timestamp >= ?",
            (name, min_seq, since_ms),
        ).fetchone()
        return int(row[0])

    def create_log_stream(self, group: str, name: str, created_at_ms: int) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO log_streams (log_group, name, created_at) VALUES (?, ?, ?)",
            (group, name, created_at_ms),
        )

    def log_stream_exists(self, group: str, name: str, min_seq: int) -> bool:
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM log_streams WHERE log_group = ? AND name = ?)"
            " OR EXISTS (SELECT 1 FROM log_events WHERE log_group = ? AND log_stream = ?"
            " AND seq > ?)",
            (group, name, group, name, min_seq),
        ).fetchone()
        return bool(row[0])

    def log_streams(
        self, group: str, min_seq: int, since_ms: int
    ) -> list[tuple[str, int, int | None, int | None, int | None]]:
        """(name, created ms, first event ms, last event ms, last ingestion ms) by name:
        CreateLogStream's streams and the streams that only exist through their events."""
        return self.db.execute(
            "SELECT name, MIN(created), MIN(first), MAX(last), MAX(ingested) FROM ("
            " SELECT log_stream AS name, MIN(ingestion_time) AS created, MIN(timestamp) AS first,"
            " MAX(timestamp) AS last, MAX(ingestion_time) AS ingested FROM log_events"
            " WHERE log_group = ? AND log_stream IS NOT NULL AND seq > ? AND timestamp >= ?"
            " AND message != '' GROUP BY log_stream"
            " UNION ALL SELECT name, created_at, NULL, NULL, NULL FROM log_streams"
            " WHERE log_group = ?) GROUP BY name ORDER BY name",
            (group, min_seq, since_ms, group),
        ).fetchall()

    def query_log_events(
        self,
        group: str,
        min_seq: int,
        limit: int,
        streams: list[str] | None = None,
        prefix: str | None = None,
        start: int | None = None,
        end: int | None = None,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        descending: bool = False,
    ) -> list[LogEvent]:
        """A group's non-empty events in (timestamp, seq) order; ``start``/``end`` inclusive,
        ``after``/``before`` exclusive (timestamp, seq) positions."""
        sql, args = log_events_sql(
            "*", group, min_seq, limit, streams, prefix, start, end, after, before, descending
        )
        return [LogEvent(*row) for row in self.db.execute(sql, args).fetchall()]

    def stream_events(
        self,
        group: str,
        min_seq: int,
        limit: int,
        stream: str,
        start: int | None = None,
        end: int | None = None,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        descending: bool = False,
    ) -> list[StreamEvent]:
        """What GetLogEvents answers of one stream's events, as :meth:`query_log_events`
        selects them: ``(timestamp, seq, ingestion_time, message)`` rows, not whole
        :class:`LogEvent` objects (reading and building the other five columns was half of
        a GetLogEvents of 100 events)."""
        sql, args = log_events_sql(
            "timestamp, seq, ingestion_time, message",
            group, min_seq, limit, [stream], None, start, end, after, before, descending,
        )  # fmt: skip
        return self.db.execute(sql, args).fetchall()  # type: ignore[no-any-return]
