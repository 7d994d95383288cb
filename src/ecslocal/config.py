"""Daemon configuration: where state lives, which port, which account and region."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

DEFAULT_PORT = 4600
DEFAULT_HOST = "127.0.0.1"
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"


def default_data_dir() -> Path:
    env = os.environ.get("ECSLOCAL_DATA_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("ecslocal", appauthor=False))


def default_port() -> int:
    return int(os.environ.get("ECSLOCAL_PORT", DEFAULT_PORT))


#: The key pair every local AWS emulator accepts out of the box (root of the account).
DEFAULT_ACCESS_KEY = ("test", "test")


def parse_access_keys(spec: str) -> list[tuple[str, str]]:
    """``ID:SECRET[,ID:SECRET...]`` (ECSLOCAL_ACCESS_KEYS, ``serve --access-key``)."""
    keys = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError(f"access key {item!r} is not ID:SECRET")
        keys.append((key_id, secret))
    return keys


def client_key() -> tuple[str, str]:
    """The key the CLI signs with: the first of $ECSLOCAL_ACCESS_KEYS (the variable
    ``ecslocal serve`` reads its extra keys from), else test/test."""
    keys = parse_access_keys(os.environ.get("ECSLOCAL_ACCESS_KEYS", ""))
    return keys[0] if keys else DEFAULT_ACCESS_KEY


@dataclass
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = field(default_factory=default_port)
    account_id: str = field(
        default_factory=lambda: os.environ.get("ECSLOCAL_ACCOUNT_ID", DEFAULT_ACCOUNT)
    )
    region: str = field(default_factory=lambda: os.environ.get("ECSLOCAL_REGION", DEFAULT_REGION))
    #: "auto" (cgroup where the machine allows it, else the RSS watchdog), "cgroup", "rss" or "off".
    memory_enforcement: str = field(
        default_factory=lambda: os.environ.get("ECSLOCAL_MEMORY_ENFORCEMENT", "auto")
    )
    #: Seconds a container's main process has after its stop signal, when stopTimeout is unset
    #: (the ECS agent's ECS_CONTAINER_STOP_TIMEOUT default).
    default_stop_timeout: float = 30.0
    #: Lifetime of a task's role credentials (ECS: 6 hours); fresh ones are vended from 30 min
    #: (at most half the lifetime) before expiry.
    credential_ttl: float = field(
        default_factory=lambda: float(os.environ.get("ECSLOCAL_CREDENTIAL_TTL", 6 * 3600))
    )
    #: The agent's per-task limit on the task endpoints (40 req/s, burst 60); "off" in
    #: ECSLOCAL_CREDENTIALS_RATE_LIMIT lifts it (benchmarks).
    credentials_rate_limit: bool = field(
        default_factory=lambda: os.environ.get("ECSLOCAL_CREDENTIALS_RATE_LIMIT", "on") != "off"
    )
    #: The EC2 instance role IMDS serves (an IAM role ARN), None for an instance without one.
    instance_role_arn: str | None = field(
        default_factory=lambda: os.environ.get("ECSLOCAL_INSTANCE_ROLE") or None
    )
    #: IMDSv1 (GET without a session token) allowed; by default IMDSv2 is required.
    imds_v1: bool = field(default_factory=lambda: os.environ.get("ECSLOCAL_IMDS_V1") == "allow")
    #: Long-term keys (of the account's root) the API accepts besides test/test.
    access_keys: list[tuple[str, str]] = field(
        default_factory=lambda: parse_access_keys(os.environ.get("ECSLOCAL_ACCESS_KEYS", ""))
    )

    #: Seconds a stopped task stays described and listed after its stoppedAt ("stopped tasks
    #: appear in the returned results for at least one hour" - DescribeTasks API reference).
    stopped_task_retention: float = field(
        default_factory=lambda: float(os.environ.get("ECSLOCAL_STOPPED_TASK_RETENTION", 3600))
    )

    #: Seconds a client has to send a complete request head, counted from the connection's
    #: start or the previous answer; also how long an idle keep-alive connection is kept
    #: (nginx: client_header_timeout 60 s, keepalive_timeout 75 s).
    header_timeout: float = field(
        default_factory=lambda: float(os.environ.get("ECSLOCAL_HEADER_TIMEOUT", 60))
    )
    #: Seconds a client may stay silent while sending a body (nginx: client_body_timeout 60 s).
    body_timeout: float = field(
        default_factory=lambda: float(os.environ.get("ECSLOCAL_BODY_TIMEOUT", 60))
    )

    #: The host ECR's repositoryUri and proxyEndpoint name (``<host>:<port>/<repo>``): it must
    #: resolve to this machine; ``localhost`` does, and dockerd takes a registry resolving to
    #: loopback for an insecure one (docs/ecr.md).
    registry_host: str = field(
        default_factory=lambda: os.environ.get("ECSLOCAL_REGISTRY_HOST", "localhost")
    )

    #: Task definitions' ECR images (``<acct>.dkr.ecr.<region>.amazonaws.com/<repo>``, the
    #: daemon's ``<registry-host>:<port>/<repo>``) are pulled from this daemon's ECR, in the
    #: task's account (``serve --no-local-ecr`` / ECSLOCAL_LOCAL_ECR=off: treated as remote).
    local_ecr: bool = field(default_factory=lambda: os.environ.get("ECSLOCAL_LOCAL_ECR") != "off")

    #: Whether the well-known test/test key is accepted (``serve --no-default-key``: no).
    default_key: bool = True

    def long_term_keys(self) -> list[tuple[str, str]]:
        """Every long-term key the API accepts."""
        return [*([DEFAULT_ACCESS_KEY] if self.default_key else []), *self.access_keys]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "state.db"
