"""How ECS names things: cluster, task definition and task references (short name or ARN),
and the opaque ``nextToken`` of its List operations.

A reference is parsed without looking anything up. A well-formed reference to a resource of
another region, account or partition parses, but is marked foreign: ecslocal holds no such
resource, so it is "not found" rather than "invalid".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ecslocal import arns
from ecslocal.errors import invalid_parameter
from ecslocal.pagination import offset_page

#: ECS's cluster identifier rule, quoted in its own error message ("Cluster must match
#: ^[a-zA-Z0-9\-_]{1,255}$, but was ..." - awslabs/amazon-ecs-nodejs-microservices#18).
CLUSTER_PATTERN = r"^[a-zA-Z0-9\-_]{1,255}$"
CLUSTER_RE = re.compile(r"[a-zA-Z0-9\-_]{1,255}")
FAMILY_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
REVISION_RE = re.compile(r"[0-9]{1,10}")
_KIND_RE = re.compile(r"[a-z-]+")

#: The cluster a request without ``cluster`` means. ECS does not create it for the account:
#: "If you do not specify a cluster, the default cluster is assumed" (RunTask, ListTasks,
#: DescribeTasks, StopTask) and a fresh account has none, so those calls answer
#: ClusterNotFoundException until CreateCluster (with or without ``clusterName``: "If you
#: don't specify a name for your cluster, you create a cluster that's named ``default``")
#: or the console's first run creates it.
DEFAULT_CLUSTER = "default"

MAX_PAGE = 100


@dataclass(frozen=True)
class Arn:
    partition: str
    region: str
    account: str
    kind: str  # "cluster", "task-definition", "task", "service", ...
    resource: str  # everything after "<kind>/"


def parse_arn(text: str) -> Arn | None:
    """The parts of an ECS ARN (``arn:<partition>:ecs:<region>:<account>:<kind>/<resource>``),
    split by botocore's ArnParser (:mod:`ecslocal.arns`)."""
    arn = arns.parse(text)
    if (
        arn is None
        or not arn.partition.startswith("aws")
        or arn.service != "ecs"
        or not _KIND_RE.fullmatch(arn.kind)
        or not arn.name
    ):
        return None
    return Arn(arn.partition, arn.region, arn.account, arn.kind, arn.name)


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
        self.partition = arns.partition_of(region)
        self.prefix = f"arn:{self.partition}:ecs:{region}:{account}"

    def own(self, arn: Arn) -> bool:
        return (arn.partition, arn.region, arn.account) == (
            self.partition,
            self.region,
            self.account,
        )

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
    page, token = offset_page(items, p.get("nextToken"), limit)
    out: dict[str, Any] = {key: page}
    if token is not None:
        out["nextToken"] = token
    return out
