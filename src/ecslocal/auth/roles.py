"""IAM roles (with their trust policies) and the sessions STS issues for them.

Roles are kept as the IAM ``Role`` document with the trust policy as given (JSON text).
:meth:`RoleStore.assume` is the one place session credentials for a role are made — for
``sts:AssumeRole``, ``sts:AssumeRoleWithWebIdentity`` and, later, a task's ``taskRoleArn``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ecslocal import arns
from ecslocal.auth import policy
from ecslocal.auth.keys import AccessKey, KeyStore, new_unique_id
from ecslocal.storage.db import Database, Schema

#: Version 1 is the table unversioned databases have.
SCHEMA = Schema(
    "iam_roles",
    [
        """
CREATE TABLE IF NOT EXISTS iam_roles (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    body TEXT NOT NULL
)
"""
    ],
)

ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


@dataclass(frozen=True)
class Session:
    key: AccessKey
    role: dict[str, Any]
    session_name: str

    @property
    def assumed_role_id(self) -> str:
        return f"{self.role['RoleId']}:{self.session_name}"

    def credentials(self) -> dict[str, Any]:
        return {
            "AccessKeyId": self.key.access_key_id,
            "SecretAccessKey": self.key.secret_access_key,
            "SessionToken": self.key.session_token,
            "Expiration": self.key.expiration,
        }

    def assumed_role_user(self) -> dict[str, str]:
        return {"AssumedRoleId": self.assumed_role_id, "Arn": self.key.arn}


def role_name_from_arn(arn: str) -> tuple[str, str] | None:
    """(account, role name) of ``arn:<partition>:iam::<account>:role/<path/>name``."""
    parsed = arns.parse(arn)
    if (
        parsed is None
        or not parsed.partition.startswith("aws")
        or parsed.service != "iam"
        or parsed.kind != "role"
        or not parsed.name
    ):
        return None
    return parsed.account, parsed.name.rsplit("/", 1)[-1]


class RoleStore:
    def __init__(
        self, db: Database, keys: KeyStore, account_id: str, region: str = "us-east-1"
    ) -> None:
        self.db = db
        self.keys = keys
        self.account_id = account_id
        #: IAM and STS are global, but their ARNs are in the partition of the region served
        #: (``arn:aws-cn:iam::…`` in cn-north-1): ecslocal.arns.global_arn.
        self.region = region
        db.register(SCHEMA)

    def create(
        self,
        name: str,
        trust_policy: str,
        now: float,
        path: str = "/",
        description: str | None = None,
        max_session_duration: int = 3600,
        tags: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        policy.parse(trust_policy)  # MalformedPolicy propagates
        role: dict[str, Any] = {
            "Path": path,
            "RoleName": name,
            "RoleId": new_unique_id("AROA"),
            "Arn": arns.global_arn("iam", self.region, self.account_id, f"role{path}{name}"),
            "CreateDate": now,
            "AssumeRolePolicyDocument": trust_policy,
            "MaxSessionDuration": max_session_duration,
        }
        if description is not None:
            role["Description"] = description
        if tags:
            role["Tags"] = tags
        self.db.execute("INSERT INTO iam_roles VALUES (?, ?)", (name, json.dumps(role)))
        return role

    def get(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM iam_roles WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def by_arn(self, arn: str) -> dict[str, Any] | None:
        parsed = role_name_from_arn(arn)
        if parsed is None or parsed[0] != self.account_id:
            return None
        role = self.get(parsed[1])
        return role if role is not None and role["Arn"] == arn else None

    def put(self, role: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE iam_roles SET body = ? WHERE name = ?", (json.dumps(role), role["RoleName"])
        )

    def delete(self, name: str) -> bool:
        return self.db.execute("DELETE FROM iam_roles WHERE name = ?", (name,)).rowcount > 0

    def list(self, path_prefix: str = "/") -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT body FROM iam_roles ORDER BY name").fetchall()
        roles = [json.loads(r[0]) for r in rows]
        return [r for r in roles if r["Path"].startswith(path_prefix)]

    def trusts(
        self,
        role: dict[str, Any],
        action: str,
        principal: policy.Principal,
        context: dict[str, str] | None = None,
    ) -> bool:
        request = policy.Request(action, principal, context or {})
        return policy.allows(role["AssumeRolePolicyDocument"], request)

    def assume(
        self, role: dict[str, Any], session_name: str, now: float, duration: float
    ) -> Session:
        resource = f"assumed-role/{role['RoleName']}/{session_name}"
        arn = arns.global_arn("sts", self.region, self.account_id, resource)
        user_id = f"{role['RoleId']}:{session_name}"
        key = self.keys.issue_session(self.account_id, arn, user_id, now, now + duration)
        return Session(key, role, session_name)
