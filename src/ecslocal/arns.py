"""Amazon Resource Names: building them in the region's partition, and taking them apart.

An ARN is ``arn:<partition>:<service>:<region>:<account>:<resource>``
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html). The partition is not
always ``aws``: cn-north-1 is in ``aws-cn``, us-gov-west-1 in ``aws-us-gov``. Which region is in
which partition comes from botocore's own partition data (``botocore/data/partitions.json``:
each partition's ``regions`` and ``regionRegex``), the table the SDKs resolve endpoints with,
rather than from a list typed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from botocore.loaders import create_loader
from botocore.utils import ArnParser, InvalidArnException

DEFAULT_PARTITION = "aws"

_PARSER = ArnParser()


@lru_cache(maxsize=1)
def _partitions() -> list[dict[str, Any]]:
    data: dict[str, Any] = create_loader().load_data("partitions")
    return list(data["partitions"])


@lru_cache(maxsize=64)
def partition_of(region: str) -> str:
    """The partition ``region`` belongs to (``aws`` for a region botocore does not know, as
    botocore's endpoint resolver also falls back to the ``aws`` partition)."""
    partitions = _partitions()
    for partition in partitions:
        if region in partition.get("regions", {}):
            return str(partition["id"])
    for partition in partitions:
        regex = partition.get("regionRegex")
        if regex and re.match(regex, region):
            return str(partition["id"])
    return DEFAULT_PARTITION


def build(service: str, region: str, account: str, resource: str) -> str:
    """The ARN of a regional ``service``'s ``resource`` in ``region``'s partition."""
    return f"arn:{partition_of(region)}:{service}:{region}:{account}:{resource}"


def global_arn(service: str, region: str, account: str, resource: str) -> str:
    """The ARN of a global service's (IAM's, STS's) ``resource`` in the partition of the
    region ecslocal serves: ``arn:aws-cn:iam::<account>:root`` in cn-north-1."""
    return f"arn:{partition_of(region)}:{service}::{account}:{resource}"


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str  # everything after the fifth colon: "task/<cluster>/<id>", "role/x", ...

    @property
    def kind(self) -> str:
        """The resource type before the first "/" ("cluster", "task-definition", "task")."""
        return self.resource.partition("/")[0]

    @property
    def name(self) -> str:
        """What follows the resource type ("<cluster>/<id>" of "task/<cluster>/<id>")."""
        return self.resource.partition("/")[2]


def parse(text: str) -> Arn | None:
    """The parts of ``text`` (botocore's :class:`ArnParser`), or None if it is not an ARN."""
    if not isinstance(text, str) or not text.startswith("arn:"):
        return None
    try:
        parts = _PARSER.parse_arn(text)
    except InvalidArnException:
        return None
    return Arn(
        parts["partition"], parts["service"], parts["region"], parts["account"], parts["resource"]
    )


def task_id_of(task_ref: str) -> str:
    """The task ID of a task ARN in either format (``task/<cluster>/<id>`` or the old
    ``task/<id>``), or of a bare task ID."""
    return task_ref.rsplit("/", 1)[-1]
