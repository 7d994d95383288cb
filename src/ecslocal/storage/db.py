"""The daemon's one SQLite database (``state.db``): connection, PRAGMAs, file modes, schema
versions and the translation of storage faults into one clear line.

Each component (the store's tables, the log tables, access keys, IAM roles, …) registers its
own :class:`Schema`: a list of migrations, where migration *i* takes the component from
version *i* to *i + 1*. The versions live in a table, ``schema_versions`` (component →
version), rather than in ``PRAGMA user_version``: that pragma is a single integer for the whole
file, so independent components would have to share (or bit-pack) one counter and every
component's upgrade would renumber the others'. A table lets each module own its own history.

"Unversioned" databases (written before versions existed) have no ``schema_versions`` table:
every component is then at version 0, and each component's first migration is exactly the
schema that code wrote, with ``IF NOT EXISTS``, so it is a no-op on their tables and only
records version 1.

``state.db`` holds secret keys and session tokens: the data directory is made 0700 and the
database with its ``-wal``/``-shm`` files 0600, tightening what an older version left looser.

Every SQLite error surfaces as :class:`StorageError`, an AWS-shaped ``ServerException`` (HTTP
500) whose message says in one line what failed; the daemon log gets that line once a minute
at most while the fault lasts, not once per failed statement (on a nearly full disk some
writes still fit and others do not, so "works again" would flap).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecslocal.errors import AwsError

log = logging.getLogger("ecslocal.storage")

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")
LOG_EVERY_SECONDS = 60.0

#: What SQLite's error names mean to someone who has to fix it.
_CAUSES = {
    "SQLITE_FULL": "the disk is full (database or disk is full)",
    "SQLITE_READONLY": "it is read-only",
    "SQLITE_READONLY_DBMOVED": "it is read-only",
    "SQLITE_NOTADB": "it is not a database (file is not a database): corrupt or not ecslocal's",
    "SQLITE_CORRUPT": "it is corrupt (database disk image is malformed)",
    "SQLITE_CANTOPEN": "it cannot be opened",
    "SQLITE_IOERR": "an I/O error occurred",
    "SQLITE_PERM": "permission denied",
}


class StorageError(AwsError):
    """A storage fault: rendered by the API as ECS's ``ServerException`` (HTTP 500)."""

    def __init__(self, message: str) -> None:
        super().__init__("ServerException", message, status=500)


@dataclass(frozen=True)
class Schema:
    """A component's tables: ``migrations[i]`` (SQL script) takes version i to i + 1."""

    component: str
    migrations: Sequence[str]

    @property
    def version(self) -> int:
        return len(self.migrations)


def _cause(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    base = name.split("_")[0] + "_" + name.split("_")[1] if name.count("_") >= 2 else name
    cause = _CAUSES.get(name) or _CAUSES.get(base)
    text = str(exc).replace("\n", " ")
    if cause is None:
        lowered = text.lower()
        if "readonly" in lowered or "read-only" in lowered:
            cause = _CAUSES["SQLITE_READONLY"]
        elif "disk is full" in lowered:
            cause = _CAUSES["SQLITE_FULL"]
        else:
            cause = text
    return cause


def _tighten(path: Path, mode: int) -> None:
    """Make ``path`` exactly ``mode`` if it exists and is ours (a read-only fs stays as is)."""
    with contextlib.suppress(FileNotFoundError, PermissionError, OSError):
        st = path.stat()
        if stat.S_IMODE(st.st_mode) != mode and st.st_uid == os.geteuid():
            os.chmod(path, mode)


def _read_only(path: Path) -> bool:
    """True when ``path`` (or, absent, its directory) cannot be written."""
    target = path if path.exists() else path.parent
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(target, os.W_OK)


class Database:
    """The one connection to ``state.db`` (used from the daemon's event loop thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._logged: dict[str, float] = {}  # message -> when it was last logged (monotonic)
        self.was_empty = False
        try:
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the data directory {path.parent}: {exc.strerror}"
            ) from None
        _tighten(path.parent, DIR_MODE)
        if _read_only(path):
            raise StorageError(f"cannot write state.db ({path}): it is read-only")
        if not path.exists():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
            except OSError as exc:
                raise StorageError(f"cannot create state.db ({path}): {exc.strerror}") from None
        elif path.stat().st_size == 0:
            # SQLite takes an empty file for an empty database: say so, it may be a mistake.
            self.was_empty = True
            log.warning("state.db (%s) is empty (0 bytes): starting with no state", path)
        for suffix in ("", *SIDE_FILES):
            _tighten(Path(f"{path}{suffix}"), FILE_MODE)
        try:
            self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open state.db ({path}): {_cause(exc)}") from None
        try:
            self.connection.execute("PRAGMA busy_timeout=5000")
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions"
                " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except sqlite3.Error as exc:
            self.connection.close()
            raise StorageError(f"cannot open state.db ({path}): {_cause(exc)}") from None
        for suffix in SIDE_FILES:
            _tighten(Path(f"{path}{suffix}"), FILE_MODE)

    def close(self) -> None:
        self.connection.close()

    # -- schemas ----------------------------------------------------------------------------
    def version(self, component: str) -> int:
        row = self.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
        return int(row[0]) if row else 0

    def register(self, schema: Schema) -> None:
        """Bring ``schema.component``'s tables to the version this code knows."""
        current = self.version(schema.component)
        if current > schema.version:
            raise StorageError(
                f"state.db ({self.path}) was written by a newer ecslocal: {schema.component}"
                f" schema version {current}, this one knows {schema.version}"
            )
        for version in range(current, schema.version):
            script = (
                "BEGIN;\n"
                f"{schema.migrations[version]};\n"
                "INSERT INTO schema_versions (component, version) VALUES"
                f" ('{schema.component}', {version + 1})"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version;\n"
                "COMMIT;"
            )
            try:
                self.connection.executescript(script)
            except sqlite3.Error as exc:
                if self.connection.in_transaction:
                    self.connection.rollback()
                doing = f"migrate {schema.component} to version {version + 1} in"
                raise self._error(exc, doing) from None

    # -- statements -------------------------------------------------------------------------
    def _error(self, exc: sqlite3.Error, doing: str = "write") -> StorageError:
        error = StorageError(f"cannot {doing} state.db ({self.path}): {_cause(exc)}")
        now = time.monotonic()
        last = self._logged.get(error.message)
        if last is None or now - last >= LOG_EVERY_SECONDS:
            self._logged[error.message] = now
            log.error("%s", error.message)
        return error

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            cursor = self.connection.execute(sql, params)
        except sqlite3.Error as exc:
            doing = "read" if sql.lstrip()[:6].upper() == "SELECT" else "write"
            raise self._error(exc, doing) from None
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        try:
            cursor = self.connection.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return cursor

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN … COMMIT; rolled back (and raised as :class:`StorageError`) on a fault."""
        try:
            self.connection.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            yield self
            self.connection.execute("COMMIT")
        except BaseException as exc:
            if self.connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            raise

    # `with db:` as with a sqlite3 connection: commit what is open on success, roll back on
    # an exception (it begins nothing itself).
    def __enter__(self) -> Database:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if not self.connection.in_transaction:
            return
        if kind is not None:
            with contextlib.suppress(sqlite3.Error):
                self.connection.execute("ROLLBACK")
            return
        try:
            self.connection.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.connection.execute("ROLLBACK")
            raise self._error(exc) from None
