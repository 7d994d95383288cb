"""How ECS names things: cluster, task definition and task references (short name or ARN),
and the opaque ``nextToken`` of its List operations.

A reference is parsed without looking anything up. A well-formed reference to a resource of
another region, account or partition parses, but is marked foreign: ecslocal holds no such
resource, so it is "not found" rather than "invalid".
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from ecslocal.errors import invalid_parameter

#: ECS's cluster identifier rule, quoted in its own error message ("Cluster must match
#: ^[a-zA-Z0-9\-_]{1,255}$, but was ..." - awslabs/amazon-ecs-nodejs-microservices#18).
CLUSTER_PATTERN = r"^[a-zA-Z0-9\-_]{1,255}$"
CLUSTER_RE = re.compile(r"[a-zA-Z0-9\-_]{1,255}")
FAMILY_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
REVISION_RE = re.compile(r"[0-9]{1,10}")
_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):ecs:(?P<region>[^:]*):(?P<account>[^:]*)"
    r":(?P<kind>[a-z-]+)/(?P<resource>.+)",
    re.DOTALL,
)

MAX_PAGE = 100


@dataclass(frozen=True)
class Arn:
    partition: str
    region: str
    account: str
    kind: str  # "cluster", "task-definition", "task", "service", ...
    resource: str  # everything after "<kind>/"


def parse_arn(text: str) -> Arn | None:
    """The parts of an ECS ARN (``arn:aws:ecs:<region>:<account>:<kind>/<resource>``)."""
    m = _ARN_RE.fullmatch(text)
    if m is None:
        return None
    return Arn(m["partition"], m["region"], m["account"], m["kind"], m["resource"])


@dataclass(frozen=True)
class TaskDefinitionRef:
    family: str
    revision: int | None  # None: "the latest ACTIVE revision"
    own: bool  # False: a well-formed ARN of another region or account

    def arn(self, prefix: str) -> str:
        return f"{prefix}:task-definition/{self.family}:{self.revision}"


class Refs:
    """Reference parsing for one ecslocal (one region, one account)."""

    def __init__(self, region: str, account: str) -> None:
        self.region = region
        self.account = account
        self.prefix = f"arn:aws:ecs:{region}:{account}"

    def own(self, arn: Arn) -> bool:
        return (arn.partition, arn.region, arn.account) == ("aws", self.region, self.account)

    def cluster(self, ref: str) -> str | None:
        """The cluster name ``ref`` (a name or an ARN) refers to; None when it cannot be one of
        ours. A name ECS would refuse is an InvalidParameterException."""
        if ref.startswith("arn:"):
            arn = parse_arn(ref)
            if arn is None or arn.kind != "cluster" or not self.own(arn):
                return None
            return arn.resource if CLUSTER_RE.fullmatch(arn.resource) else None
        if not CLUSTER_RE.fullmatch(ref):
            raise invalid_parameter(f"Cluster must match {CLUSTER_PATTERN}, but was {ref}")
        return ref

    def cluster_arn(self, ref: str) -> str:
        """``ref`` as an ARN, for a ``failures`` entry."""
        return ref if ref.startswith("arn:") else f"{self.prefix}:cluster/{ref}"

    def task_definition(self, ref: str) -> TaskDefinitionRef | None:
        """``family``, ``family:revision`` or an ARN; None if malformed."""
        name, own = ref, True
        if ref.startswith("arn:"):
            arn = parse_arn(ref)
            if arn is None or arn.kind != "task-definition":
                return None
            name, own = arn.resource, self.own(arn)
        family, sep, revision = name.partition(":")
        if not FAMILY_RE.fullmatch(family):
            return None
        if not sep:
            return TaskDefinitionRef(family, None, own)
        if not REVISION_RE.fullmatch(revision):
            return None
        return TaskDefinitionRef(family, int(revision), own)

    def task_id(self, ref: str, cluster: str) -> str | None:
        """The task ID of a task ID or task ARN (new ``task/<cluster>/<id>`` or old
        ``task/<id>`` format) in ``cluster``; None if it cannot name a task there."""
        if not ref.startswith("arn:"):
            return ref if ref and "/" not in ref else None
        arn = parse_arn(ref)
        if arn is None or arn.kind != "task" or not self.own(arn):
            return None
        parts = arn.resource.split("/")
        if len(parts) == 2 and parts[0] == cluster:
            return parts[1]
        return parts[0] if len(parts) == 1 else None

    def task_arn(self, ref: str, cluster: str) -> str:
        return ref if ref.startswith("arn:") else f"{self.prefix}:task/{cluster}/{ref}"


def paginate(items: list[str], p: dict[str, Any], key: str) -> dict[str, Any]:
    """One page of ``items`` for a List operation's ``nextToken``/``maxResults``."""
    limit = p.get("maxResults")
    if limit is None:
        limit = MAX_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise invalid_parameter(f"maxResults must be between 1 and {MAX_PAGE}.")
    start = 0
    token = p.get("nextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error):
            start = -1
        if start < 0:
            raise invalid_parameter("Invalid nextToken.")
    page = items[start : start + limit]
    out: dict[str, Any] = {key: page}
    if start + limit < len(items):
        out["nextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
    return out
