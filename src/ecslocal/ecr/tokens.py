"""ECR authorization tokens: what GetAuthorizationToken hands out and the registry accepts.

A token is ``base64("AWS:<password>")``, valid 12 hours (botocore AuthorizationData:
"Authorization tokens are valid for 12 hours"; the user is always ``AWS``). The password is
URL-safe base64 (``[A-Za-z0-9_-]``), so it never holds the ``:`` that ``aws ecr
get-login-password`` splits on (awscli customizations/ecr.py). Only the password's SHA-256 is
stored, in state.db: tokens survive a restart, and a copy of the database reveals none.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from ecslocal.clock import Clock
from ecslocal.storage.db import Database, Schema

TOKEN_TTL = 12 * 3600.0
USER = "AWS"

SCHEMA = Schema(
    "ecr_tokens",
    [
        "CREATE TABLE IF NOT EXISTS ecr_tokens ("
        " password_sha256 TEXT PRIMARY KEY, account TEXT NOT NULL, region TEXT NOT NULL,"
        " expires_at REAL NOT NULL)",
    ],
)


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class AuthTokens:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        db.register(SCHEMA)

    def issue(self, account: str, region: str) -> tuple[str, float]:
        """A new token for ``account`` in ``region`` and its expiry (epoch seconds on the
        daemon's clock). Expired tokens are dropped on the way."""
        now = self.clock.time()
        password = secrets.token_urlsafe(48)
        expires_at = now + TOKEN_TTL
        with self.db.transaction():
            self.db.execute("DELETE FROM ecr_tokens WHERE expires_at <= ?", (now,))
            self.db.execute(
                "INSERT INTO ecr_tokens (password_sha256, account, region, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (_digest(password), account, region, expires_at),
            )
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        return token, expires_at

    def verify(self, password: str) -> tuple[str, str] | None:
        """``(account, region)`` of the live token whose password this is, else None."""
        row = self.db.execute(
            "SELECT account, region, expires_at FROM ecr_tokens WHERE password_sha256 = ?",
            (_digest(password),),
        ).fetchone()
        if row is None or row[2] <= self.clock.time():
            return None
        return str(row[0]), str(row[1])
