"""Access keys the API accepts: long-term keys (``test``/``test`` and configured ones) and the
session credentials STS issues, each with its principal and, for sessions, its expiry.

Keys live in SQLite (so issued session credentials survive a restart and keep expiring on
time) with an in-memory index in front, since every signed request looks one up.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from ecslocal import arns
from ecslocal.auth.caller import Caller
from ecslocal.clock import Clock
from ecslocal.storage.db import Database, Schema

#: Version 1 is the table unversioned databases have.
SCHEMA = Schema(
    "access_keys",
    [
        """
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    session_token TEXT,
    account_id TEXT NOT NULL,
    arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expiration REAL,
    issued_at REAL NOT NULL
)
"""
    ],
)

_KEY_ALPHABET = string.ascii_uppercase + "234567"  # AWS key ids are base32-ish upper case
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def new_key_id(prefix: str) -> str:
    """An AWS-format key id: 4-letter prefix (``AKIA`` long-term, ``ASIA`` session) + 16."""
    return prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def new_session_token() -> str:
    # Real tokens are opaque base64 blobs of a few hundred characters; SDKs pass them through.
    return "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(300)


def new_unique_id(prefix: str) -> str:
    """IAM unique ids: ``AROA`` (role), ``AIDA`` (user) + 17 characters."""
    return prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    account_id: str
    arn: str
    user_id: str
    expiration: float | None
    issued_at: float

    def caller(self) -> Caller:
        return Caller(
            access_key_id=self.access_key_id,
            account_id=self.account_id,
            arn=self.arn,
            user_id=self.user_id,
            session_token=self.session_token,
        )


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.register(SCHEMA)
        self._cache: dict[str, AccessKey] = {}
        #: Keys issued to a running task's role (task-scoped faults): key id -> task id.
        self.tasks: dict[str, str] = {}
        #: Keys issued to a time-warped task: the clock its processes sign with.
        self.clocks: dict[str, Clock] = {}

    def add_long_term(
        self, key_id: str, secret: str, account_id: str, now: float, region: str = "us-east-1"
    ) -> AccessKey:
        """A key of the account's root user (what ``test``/``test`` is), whose ARN is in the
        partition of the region served (``arn:aws-cn:iam::<account>:root`` in cn-north-1)."""
        key = AccessKey(
            key_id,
            secret,
            None,
            account_id,
            arns.global_arn("iam", region, account_id, "root"),
            account_id,
            None,
            now,
        )
        self._put(key)
        return key

    def drop_long_term_except(self, keep: set[str]) -> None:
        """Forget the long-term keys of an earlier run that are not configured now (the store
        outlives the daemon: a dropped ``--access-key``, or test/test under
        ``serve --no-default-key``, must stop working)."""
        rows = self.db.execute(
            "SELECT access_key_id FROM access_keys WHERE session_token IS NULL"
        ).fetchall()
        for (key_id,) in rows:
            if key_id not in keep:
                self.db.execute("DELETE FROM access_keys WHERE access_key_id = ?", (key_id,))
                self._cache.pop(key_id, None)

    def issue_session(
        self, account_id: str, arn: str, user_id: str, now: float, expiration: float
    ) -> AccessKey:
        key = AccessKey(
            new_key_id("ASIA"),
            new_secret(),
            new_session_token(),
            account_id,
            arn,
            user_id,
            expiration,
            now,
        )
        self._put(key)
        return key

    def _put(self, key: AccessKey) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO access_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.access_key_id,
                key.secret_access_key,
                key.session_token,
                key.account_id,
                key.arn,
                key.user_id,
                key.expiration,
                key.issued_at,
            ),
        )
        self._cache[key.access_key_id] = key

    def get(self, key_id: str) -> AccessKey | None:
        key = self._cache.get(key_id)
        if key is None:
            row = self.db.execute(
                "SELECT * FROM access_keys WHERE access_key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                return None
            key = self._cache[key_id] = AccessKey(*row)
        return key

    def expire(self, key_id: str, now: float) -> None:
        """End a session key's life now (used by fault injection and tests)."""
        key = self.get(key_id)
        if key is not None and key.session_token is not None:
            self.db.execute(
                "UPDATE access_keys SET expiration = ? WHERE access_key_id = ?", (now, key_id)
            )
            self._cache.pop(key_id, None)
