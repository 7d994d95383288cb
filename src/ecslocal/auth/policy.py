"""Trust-policy evaluation: may this principal assume this role?

What IAM does for a role's trust policy (the resource-based policy in
``AssumeRolePolicyDocument``), reduced to what ecslocal needs: statements with ``Effect``,
``Action``/``NotAction``, ``Principal`` (``"*"``, ``AWS``, ``Service``, ``Federated``) and a
``Condition`` block with the string/ARN/bool operators (``…IfExists`` too). An explicit Deny
wins; no matching Allow means denied. A condition key absent from the request context fails the
condition, as in IAM. Unsupported condition operators make the statement not match (so an Allow
is never granted on a condition ecslocal cannot check).

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from ecslocal import arns


class MalformedPolicy(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who asks: an AWS principal ARN (user, root, assumed-role session), a service
    (``ecs-tasks.amazonaws.com``) or a federated provider ARN."""

    kind: str  # "AWS" | "Service" | "Federated"
    value: str
    account_id: str = ""
    #: For an assumed-role session, the role's ARN (trust policies name roles, not sessions).
    role_arn: str = ""


@dataclass
class Request:
    action: str
    principal: Principal
    context: dict[str, str] = field(default_factory=dict)


def parse(document: str) -> list[dict[str, Any]]:
    """The statements of a policy document; raises :class:`MalformedPolicy`."""
    try:
        doc = json.loads(document)
    except ValueError:
        raise MalformedPolicy("This policy contains invalid Json") from None
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise MalformedPolicy("Syntax errors in policy.")
    statements = doc["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicy("Syntax errors in policy.")
    for s in statements:
        if not isinstance(s, dict) or s.get("Effect") not in ("Allow", "Deny"):
            raise MalformedPolicy("Syntax errors in policy.")
        if "Action" not in s and "NotAction" not in s:
            raise MalformedPolicy("Policy statement must contain actions.")
        if "Principal" not in s and "NotPrincipal" not in s:
            raise MalformedPolicy("AssumeRolepolicy contained an invalid principal element.")
    return statements


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _wild(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _action_matches(statement: dict[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(_wild(p, action, case=False) for p in _as_list(statement["Action"]))
    return not any(_wild(p, action, case=False) for p in _as_list(statement["NotAction"]))


def _is_root_of(value: str, who: Principal) -> bool:
    """``value`` is the root ARN of ``who``'s account in ``who``'s partition
    (``arn:aws-cn:iam::<account>:root`` for a caller in cn-north-1)."""
    caller = arns.parse(who.value)
    partition = caller.partition if caller is not None else arns.DEFAULT_PARTITION
    return value == f"arn:{partition}:iam::{who.account_id}:root"


def _principal_matches(spec: Any, who: Principal) -> bool:
    if spec == "*":
        return True
    if not isinstance(spec, dict):
        return False
    for value in _as_list(spec.get(who.kind)):
        if value == "*":
            return True
        if who.kind != "AWS":
            if value == who.value:
                return True
            continue
        # An account id or its root ARN stands for every principal of that account.
        if who.account_id and (value == who.account_id or _is_root_of(value, who)):
            return True
        if value in (who.value, who.role_arn):
            return True
    return False


_STRING_OPS = {
    "StringEquals": lambda p, v: p == v,
    "StringNotEquals": lambda p, v: p != v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: _wild(p, v),
    "StringNotLike": lambda p, v: not _wild(p, v),
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": lambda p, v: _wild(p, v),
    "ArnNotEquals": lambda p, v: p != v,
    "ArnNotLike": lambda p, v: not _wild(p, v),
    "Bool": lambda p, v: p.lower() == v.lower(),
}


def _conditions_hold(conditions: Any, context: dict[str, str]) -> bool:
    if not conditions:
        return True
    if not isinstance(conditions, dict):
        return False
    for operator, checks in conditions.items():
        if_exists = operator.endswith("IfExists")
        name = operator.removesuffix("IfExists").split(":")[-1]
        test = _STRING_OPS.get(name)
        if test is None or not isinstance(checks, dict):
            return False
        negated = "Not" in name
        for key, wanted in checks.items():
            actual = context.get(key) if key in context else _ci_get(context, key)
            if actual is None:
                if if_exists:
                    continue
                return False
            patterns = _as_list(wanted) or [str(wanted)]
            results = [test(p, actual) for p in patterns]
            if not (all(results) if negated else any(results)):
                return False
    return True


def _ci_get(context: dict[str, str], key: str) -> str | None:
    lowered = key.lower()  # condition keys are case-insensitive
    for k, v in context.items():
        if k.lower() == lowered:
            return v
    return None


def allows(document: str, request: Request) -> bool:
    allowed = False
    for s in parse(document):
        if not _action_matches(s, request.action):
            continue
        if "Principal" in s:
            if not _principal_matches(s["Principal"], request.principal):
                continue
        elif _principal_matches(s["NotPrincipal"], request.principal):
            continue
        if not _conditions_hold(s.get("Condition"), request.context):
            continue
        if s["Effect"] == "Deny":
            return False
        allowed = True
    return allowed
