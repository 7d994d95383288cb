"""AWS Identity and Access Management, roles only (query protocol, API version 2010-05-08).

CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy. Trust policies are stored
as given and returned URL-encoded, as IAM returns them (botocore decodes them back to a dict).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ecslocal.api.service import Handler, Service
from ecslocal.auth import policy
from ecslocal.auth.caller import Caller
from ecslocal.auth.policy import MalformedPolicy
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.errors import AwsError
from ecslocal.pagination import offset_page


def _wire(role: dict[str, Any]) -> dict[str, Any]:
    return {**role, "AssumeRolePolicyDocument": quote(role["AssumeRolePolicyDocument"], safe="")}


def _no_such_role(name: str) -> AwsError:
    return AwsError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)


class IamApi:
    def __init__(self, roles: RoleStore, clock: Clock) -> None:
        self.roles = roles
        self.clock = clock

    def service(self) -> Service:
        handlers: dict[str, Handler] = {
            "CreateRole": self.create_role,
            "GetRole": self.get_role,
            "ListRoles": self.list_roles,
            "DeleteRole": self.delete_role,
            "UpdateAssumeRolePolicy": self.update_assume_role_policy,
        }
        return Service(
            "iam",
            handlers,
            signing_name="iam",
            validation_error=("ValidationError", 400),
            type_error=("ValidationError", 400),
        )

    def create_role(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        name = p["RoleName"]
        if self.roles.get(name) is not None:
            raise AwsError("EntityAlreadyExists", f"Role with name {name} already exists.", 409)
        try:
            role = self.roles.create(
                name,
                p["AssumeRolePolicyDocument"],
                self.clock.time(),
                path=p.get("Path", "/"),
                description=p.get("Description"),
                max_session_duration=p.get("MaxSessionDuration", 3600),
                tags=p.get("Tags"),
            )
        except MalformedPolicy as bad:
            raise AwsError("MalformedPolicyDocument", str(bad)) from None
        return {"Role": _wire(role)}

    def get_role(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        role = self.roles.get(p["RoleName"])
        if role is None:
            raise _no_such_role(p["RoleName"])
        return {"Role": _wire(role)}

    def list_roles(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        roles = self.roles.list(p.get("PathPrefix", "/"))
        page, marker = offset_page(
            roles,
            p.get("Marker"),
            p.get("MaxItems", 100),
            bad_token=AwsError("ValidationError", "Invalid Marker."),
        )
        out: dict[str, Any] = {"Roles": [_wire(r) for r in page], "IsTruncated": False}
        if marker is not None:
            out["IsTruncated"] = True
            out["Marker"] = marker
        return out

    def delete_role(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        if not self.roles.delete(p["RoleName"]):
            raise _no_such_role(p["RoleName"])
        return {}

    def update_assume_role_policy(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        role = self.roles.get(p["RoleName"])
        if role is None:
            raise _no_such_role(p["RoleName"])
        try:
            policy.parse(p["PolicyDocument"])
        except MalformedPolicy as bad:
            raise AwsError("MalformedPolicyDocument", str(bad)) from None
        role["AssumeRolePolicyDocument"] = p["PolicyDocument"]
        self.roles.put(role)
        return {}
