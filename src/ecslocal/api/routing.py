"""Which service and which operation a request is for, as AWS's endpoints decide it.

* AWS JSON: the ``X-Amz-Target`` prefix names the service (``AmazonEC2ContainerServiceV20141113``).
* query: the SigV4 credential scope names the service (its signing name: ``sts``, ``iam``); the
  ``Action`` parameter the operation. An unsigned request can only be one of the operations AWS
  serves unsigned (``sts:AssumeRoleWithWebIdentity``), found by its ``Action``.
* rest-json/rest-xml: the signing name, else the host (S3 virtual-hosted style,
  ``<bucket>.s3.<host>`` or ``<bucket>.localhost``), names the service; the operation is the
  one whose ``http.method`` and ``http.requestUri`` template (botocore's model: ``{Label}``,
  greedy ``{Key+}``, and query-string literals such as ``?uploads`` or ``?list-type=2``) match.

LocalStack ASF routes in the same order of evidence (signing name, target prefix, path, host;
``localstack/aws/protocol/service_router.py``), read for structure only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ecslocal.auth import sigv4

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel

    from ecslocal.api.service import Service

_LABEL = re.compile(r"\{([^}]+)\}")
#: Query literals the SDKs add to a template only to name the operation for logs (S3's
#: ``?x-id=GetObject``); other clients (the Go SDK v1, curl) leave them out.
_OPTIONAL_LITERALS = frozenset({"x-id"})
#: Hosts that are the daemon itself when a bucket name is put in front of them.
#: The bucket part is as short as possible, so ``my.bucket.s3.localhost`` names ``my.bucket``;
#: bucket names are 3-63 characters, so ``s3.localhost`` (path style) names none.
_S3_VIRTUAL_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}?[a-z0-9])\.(?:s3[.\-].+|localhost)$"
)


@dataclass(frozen=True, slots=True)
class UriTemplate:
    """One operation's ``http.method`` + ``http.requestUri``."""

    operation: str
    method: str
    regex: re.Pattern[str]
    #: Label names in the order of the regex groups (``Key`` for ``{Key+}``).
    labels: tuple[str, ...]
    #: ``(name, value)`` literals of the template's query part; ``value`` None = any value.
    literals: tuple[tuple[str, str | None], ...]
    #: Higher is more specific: query literals, then literal characters, then fewer greedy.
    rank: tuple[int, int, int]

    @classmethod
    def of(cls, op: OperationModel) -> UriTemplate:
        uri = str(op.http.get("requestUri", "/"))
        path, _, query = uri.partition("?")
        pattern, labels, literal_chars, greedy, last = [], [], 0, 0, 0
        for m in _LABEL.finditer(path):
            literal = path[last : m.start()]
            pattern.append(re.escape(literal))
            literal_chars += len(literal)
            name = m.group(1)
            if name.endswith("+"):
                labels.append(name[:-1])
                pattern.append("(.+)")
                greedy += 1
            else:
                labels.append(name)
                pattern.append("([^/]+)")
            last = m.end()
        tail = path[last:]
        literal_chars += len(tail)
        pattern.append(re.escape(tail))
        literals: list[tuple[str, str | None]] = []
        for part in query.split("&"):
            if part:
                name, sep, value = part.partition("=")
                if name not in _OPTIONAL_LITERALS:
                    literals.append((name, value if sep else None))
        return cls(
            op.name,
            str(op.http.get("method", "POST")).upper(),
            re.compile("".join(pattern) + "/?" if tail.endswith("/") else "".join(pattern)),
            tuple(labels),
            tuple(literals),
            (len(literals), literal_chars, -greedy),
        )

    def match(self, method: str, path: str, query: Mapping[str, str]) -> dict[str, str] | None:
        """The decoded label values, or None if the request is not this operation."""
        if method != self.method:
            return None
        for name, value in self.literals:
            if name not in query or (value is not None and query[name] != value):
                return None
        m = self.regex.fullmatch(path)
        if m is None:
            return None
        return {name: unquote(raw) for name, raw in zip(self.labels, m.groups(), strict=True)}


class OperationRouter:
    """A rest service's operations, most specific template first."""

    def __init__(self, model: ServiceModel, operations: Iterable[str]) -> None:
        templates = [UriTemplate.of(model.operation_model(name)) for name in operations]
        self.templates = sorted(templates, key=lambda t: t.rank, reverse=True)

    def resolve(
        self, method: str, path: str, query: Mapping[str, str]
    ) -> tuple[str, dict[str, str]] | None:
        for template in self.templates:
            labels = template.match(method, path, query)
            if labels is not None:
                return template.operation, labels
        return None


@dataclass(frozen=True, slots=True)
class Route:
    service: Service | None
    #: The request's ``Credential`` parts ([key id, date, region, service, terminator]) when
    #: routing needed them (not for AWS JSON, which routes by target).
    credential: Sequence[str] | None
    #: For S3 virtual-hosted style: the bucket the host names.
    bucket: str | None = None


class ServiceRouter:
    """Which of the registered services a request is for (before its body is read)."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        self.by_target = {s.target_prefix: s for s in services if s.target_prefix}
        self.by_scope = {s.signing_name: s for s in services}
        self.unsigned = {
            op: s for s in services if not s.target_prefix for op in s.unsigned_operations
        }

    def route(self, headers: Mapping[str, str], query: Mapping[str, str], host: str) -> Route:
        target = headers.get("X-Amz-Target")
        if target is not None:  # the scope is not needed to route (the faults stage reads it)
            return Route(self.by_target.get(target.rpartition(".")[0]), None)
        credential = sigv4.credential_parts(headers, query)
        if credential is not None:
            service = self.by_scope.get(credential[3])
            bucket = None
            if service is not None and service.name == "s3":
                bucket = virtual_host_bucket(host)
            return Route(service, credential, bucket)
        bucket = virtual_host_bucket(host)
        if bucket is not None and "s3" in self.by_scope:
            return Route(self.by_scope["s3"], None, bucket)
        return Route(None, None)

    def unsigned_service(self, action: str) -> Service | None:
        """The query service that serves ``action`` without a signature, if any."""
        return self.unsigned.get(action)


def virtual_host_bucket(host: str) -> str | None:
    """The bucket of an S3 virtual-hosted-style host (``b.s3.localhost.localstack.cloud``,
    ``b.s3.us-east-1.amazonaws.com``, ``b.localhost``), for hosts that resolve to the daemon."""
    m = _S3_VIRTUAL_HOST.match(host)
    return m.group("bucket") if m else None
