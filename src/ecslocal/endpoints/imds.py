"""EC2 instance metadata (IMDSv2) for EC2-launch-type tasks and the SDKs' last fallback.

Served under ``/latest/`` (a sub-app of :mod:`ecslocal.endpoints.app`: ``imds`` faults are its
pipeline's, for every task, and no task's rate limit applies) on the daemon's port, for host
clients, and on a listener of its own (:meth:`Listeners.open_shared`), whose URL EC2-launch-type
containers get in ``AWS_EC2_METADATA_SERVICE_ENDPOINT``: a ``refuse`` fault stops that one
listening, a TCP refusal as when an instance's metadata service is down. As on an instance
that requires IMDSv2:

* ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1–21600) returns a
  token; a missing or out-of-range TTL is 400;
* every ``GET`` needs ``X-aws-ec2-metadata-token``: missing or expired is 401 (IMDSv1 only when
  the daemon allows it: ``--imds-v1``);
* ``meta-data/instance-id``, ``placement/region``, ``placement/availability-zone``,
  ``iam/info``, ``iam/security-credentials/`` and ``iam/security-credentials/<role>`` — the
  instance role (``--instance-role ARN``), whose session credentials rotate like the task
  role's. Without an instance role the IAM paths are 404, as on an instance without a profile.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from aiohttp import web

from ecslocal.auth.keys import AccessKey
from ecslocal.auth.roles import RoleStore, role_name_from_arn
from ecslocal.clock import Clock
from ecslocal.endpoints.app import Scope
from ecslocal.timefmt import iso8601

TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_TOKEN_TTL = 21600
CREDENTIAL_TTL = 6 * 3600.0
REFRESH_LEAD = 30 * 60.0


class InstanceMetadata:
    def __init__(
        self,
        roles: RoleStore,
        clock: Clock,
        region: str,
        instance_seed: str,
        instance_role_arn: str | None = None,
        allow_v1: bool = False,
    ) -> None:
        self.roles = roles
        self.clock = clock
        self.region = region
        self.instance_id = "i-" + hashlib.sha256(instance_seed.encode()).hexdigest()[:17]
        self.instance_role_arn = instance_role_arn
        self.allow_v1 = allow_v1
        self._tokens: dict[str, float] = {}
        self._key: AccessKey | None = None

    @property
    def role_name(self) -> str | None:
        parsed = role_name_from_arn(self.instance_role_arn or "")
        return parsed[1] if parsed else None

    def routes(self) -> list[web.RouteDef]:
        """Relative to ``/latest``."""
        return [
            web.put("/api/token", self.token),
            web.get("/meta-data", self.meta_data),
            web.get("/meta-data/{path:.*}", self.meta_data),
        ]

    def resolve(self, request: web.Request) -> Scope[None]:
        """Every request is every task's: one instance metadata service answers them all."""
        return Scope("imds", None, None)

    async def token(self, request: web.Request) -> web.Response:
        try:
            ttl = int(request.headers.get(TTL_HEADER, ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            return web.Response(status=400, text="")
        now = self.clock.time()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = secrets.token_urlsafe(40)
        self._tokens[token] = now + ttl
        return web.Response(text=token, headers={TTL_HEADER: str(ttl)})

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return self.allow_v1
        expires = self._tokens.get(token)
        return expires is not None and expires > self.clock.time()

    def _credentials(self) -> AccessKey | None:
        now = self.clock.time()
        key = self._key
        if key is None or key.expiration is None or now >= key.expiration - REFRESH_LEAD:
            role = self.roles.by_arn(self.instance_role_arn or "")
            if role is None:
                return None
            key = self._key = self.roles.assume(role, self.instance_id, now, CREDENTIAL_TTL).key
        return key

    async def meta_data(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, text="")
        path = request.match_info.get("path", "").strip("/")
        body = self._lookup(path)
        if body is None:
            return web.Response(status=404, text="")
        if isinstance(body, dict):
            return web.Response(text=json.dumps(body, indent=2), content_type="text/plain")
        return web.Response(text=body, content_type="text/plain")

    def _lookup(self, path: str) -> str | dict[str, Any] | None:
        zone = f"{self.region}a"
        name = self.role_name
        # AWS lists iam/ only "If there is an IAM role associated with the instance ...
        # Otherwise, not present" (EC2 User Guide, instance metadata categories): no listing
        # entry that answers 404.
        static = {
            "": "ami-id\ninstance-id\ninstance-type\nplacement/" + ("\niam/" if name else ""),
            "instance-id": self.instance_id,
            "instance-type": "m5.large",
            "ami-id": "ami-0ecslocal0000000",
            "placement": "availability-zone\nregion",
            "placement/region": self.region,
            "placement/availability-zone": zone,
        }
        if path in static:
            return static[path]
        if not path.startswith("iam") or name is None:
            return None
        if path == "iam":
            return "info\nsecurity-credentials/"
        if path == "iam/security-credentials":
            return name
        if path == "iam/info":
            return {
                "Code": "Success",
                "LastUpdated": iso8601(self.clock.time()),
                "InstanceProfileArn": self.instance_role_arn.replace(":role/", ":instance-profile/")
                if self.instance_role_arn
                else "",
                "InstanceProfileId": "AIPA" + self.instance_id[2:].upper(),
            }
        if path == f"iam/security-credentials/{name}":
            key = self._credentials()
            if key is None:
                return None
            return {
                "Code": "Success",
                "LastUpdated": iso8601(key.issued_at),
                "Type": "AWS-HMAC",
                "AccessKeyId": key.access_key_id,
                "SecretAccessKey": key.secret_access_key,
                "Token": key.session_token,
                "Expiration": iso8601(key.expiration or 0),
            }
        return None
