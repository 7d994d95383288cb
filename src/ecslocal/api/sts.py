"""AWS Security Token Service (query protocol, API version 2011-06-15).

GetCallerIdentity; AssumeRole and AssumeRoleWithWebIdentity issue session credentials
(``ASIA…`` key id, secret, session token, Expiration) that the API accepts until they expire
and then refuses with ``ExpiredToken``/``ExpiredTokenException``.
"""

from __future__ import annotations

from typing import Any

from ecslocal import arns
from ecslocal.api.service import Handler, Service
from ecslocal.auth import policy
from ecslocal.auth.caller import Caller
from ecslocal.auth.oidc import PROVIDER, InvalidToken, OidcIssuer
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.errors import AwsError

DEFAULT_DURATION = 3600
#: A session used to assume another role ("role chaining") is capped at one hour.
CHAINED_MAX_DURATION = 3600


def caller_principal(caller: Caller) -> policy.Principal:
    role_arn = ""
    arn = arns.parse(caller.arn)
    if arn is not None and arn.service == "sts" and arn.kind == "assumed-role":
        # arn:<partition>:sts::<acct>:assumed-role/<role>/<session> -> the role's IAM ARN
        role_name = arn.name.split("/")[0]
        role_arn = f"arn:{arn.partition}:iam::{caller.account_id}:role/{role_name}"
    return policy.Principal("AWS", caller.arn, caller.account_id, role_arn)


class StsApi:
    def __init__(self, config: Config, roles: RoleStore, oidc: OidcIssuer, clock: Clock) -> None:
        self.config = config
        self.roles = roles
        self.oidc = oidc
        self.clock = clock

    def service(self) -> Service:
        handlers: dict[str, Handler] = {
            "GetCallerIdentity": self.get_caller_identity,
            "AssumeRole": self.assume_role,
            "AssumeRoleWithWebIdentity": self.assume_role_with_web_identity,
        }
        return Service(
            "sts",
            handlers,
            signing_name="sts",
            validation_error=("ValidationError", 400),
            type_error=("ValidationError", 400),
            unsigned_operations=frozenset({"AssumeRoleWithWebIdentity"}),
        )

    def get_caller_identity(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return {"UserId": caller.user_id, "Account": caller.account_id, "Arn": caller.arn}

    def _duration(self, p: dict[str, Any], role: dict[str, Any], chained: bool) -> int:
        duration = p.get("DurationSeconds", DEFAULT_DURATION)
        if chained and duration > CHAINED_MAX_DURATION:
            raise AwsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles"
                " assumed by role chaining.",
            )
        if duration > role.get("MaxSessionDuration", 3600):
            raise AwsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        return int(duration)

    def assume_role(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        role = self.roles.by_arn(p["RoleArn"])
        denied = AwsError(
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource:"
            f" {p['RoleArn']}",
            403,
        )
        if role is None:
            raise denied
        principal = caller_principal(caller)
        context = {"aws:PrincipalAccount": caller.account_id, "aws:PrincipalArn": caller.arn}
        if "SourceIdentity" in p:
            context["sts:SourceIdentity"] = p["SourceIdentity"]
        if "ExternalId" in p:
            context["sts:ExternalId"] = p["ExternalId"]
        if not self.roles.trusts(role, "sts:AssumeRole", principal, context):
            raise denied
        duration = self._duration(p, role, chained=bool(principal.role_arn))
        session = self.roles.assume(role, p["RoleSessionName"], self.clock.time(), duration)
        out: dict[str, Any] = {
            "Credentials": session.credentials(),
            "AssumedRoleUser": session.assumed_role_user(),
        }
        if "Policy" in p:
            out["PackedPolicySize"] = min(100, len(p["Policy"]) * 100 // 2048)
        if "SourceIdentity" in p:
            out["SourceIdentity"] = p["SourceIdentity"]
        return out

    def assume_role_with_web_identity(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        now = self.clock.time()
        try:
            claims = self.oidc.verify(p["WebIdentityToken"], now)
        except InvalidToken as bad:
            raise AwsError(bad.code, bad.message) from None
        audience = claims.get("aud")
        audience = audience[0] if isinstance(audience, list) and audience else audience
        role = self.roles.by_arn(p["RoleArn"])
        denied = AwsError(
            "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
        )
        if role is None:
            raise denied
        principal = policy.Principal(
            "Federated", self.oidc.provider_arn(self.config.account_id), self.config.account_id
        )
        context = {
            f"{PROVIDER}:sub": str(claims.get("sub", "")),
            f"{PROVIDER}:aud": str(audience or ""),
            f"{PROVIDER}:iss": str(claims.get("iss", "")),
        }
        if not self.roles.trusts(role, "sts:AssumeRoleWithWebIdentity", principal, context):
            raise denied
        duration = self._duration(p, role, chained=False)
        session = self.roles.assume(role, p["RoleSessionName"], now, duration)
        return {
            "Credentials": session.credentials(),
            "SubjectFromWebIdentityToken": str(claims.get("sub", "")),
            "AssumedRoleUser": session.assumed_role_user(),
            "Provider": PROVIDER,
            "Audience": str(audience or ""),
        }
