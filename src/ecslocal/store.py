"""SQLite state (WAL): clusters, task definitions, tasks and captured log lines.

The store is the daemon's memory across restarts. It keeps documents as JSON in the shapes the
ECS API returns, plus the few columns that are queried. All calls come from the daemon's event
loop thread; writes are small transactions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
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
"""


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
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- clusters ---------------------------------------------------------------------------
    def put_cluster(self, name: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO clusters (name, body) VALUES (?, ?)", (name, json.dumps(body))
        )

    def get_cluster(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM clusters WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_clusters(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT body FROM clusters ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_cluster(self, name: str) -> None:
        self.db.execute("DELETE FROM clusters WHERE name = ?", (name,))

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
            (body["family"], body["revision"], body["status"], json.dumps(body),
             json.dumps(tags or [])),
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

    # -- tasks ------------------------------------------------------------------------------
    def put_task(self, task_id: str, body: dict[str, Any], runtime: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tasks (task_id, cluster, family, started_by, desired_status,"
            " last_status, created_at, body, runtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task_id,
                body["clusterArn"].rsplit("/", 1)[-1],
                body["taskDefinitionArn"].rsplit("/", 1)[-1].split(":")[0],
                body.get("startedBy"),
                body["desiredStatus"],
                body["lastStatus"],
                body["createdAt"],
                json.dumps(body),
                json.dumps(runtime),
            ),
        )

    def get_task(self, task_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        row = self.db.execute(
            "SELECT body, runtime FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def list_tasks(
        self,
        cluster: str | None = None,
        desired_status: str | None = None,
        family: str | None = None,
        started_by: str | None = None,
        not_stopped: bool = False,
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
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
        sql += " ORDER BY created_at"
        for body, runtime in self.db.execute(sql, args).fetchall():
            yield json.loads(body), json.loads(runtime)

    # -- logs -------------------------------------------------------------------------------
    def ensure_log_group(self, name: str, created_at: float) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO log_groups (name, created_at) VALUES (?, ?)", (name, created_at)
        )

    def append_logs(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows: (task_id, container, source, log_group, log_stream, timestamp, ingestion, msg)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO log_events (task_id, container, source, log_group, log_stream,"
                " timestamp, ingestion_time, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

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
