"""ECR names and addresses: repository-name rules, repository ARNs, ``repositoryUri``,
``proxyEndpoint`` and the parser of a task definition's ``image``.

Sources: botocore ``ecr/2015-09-21/service-2.json`` (shape ``RepositoryName``: 2-256
characters, the regex below; ``Repository.repositoryArn``); the ECR User Guide "Amazon ECR
private repositories" (https://docs.aws.amazon.com/AmazonECR/latest/userguide/Repositories.html:
``<acct>.dkr.ecr.<region>.amazonaws.com/<name>``). ecslocal's registry is not on port 443 and
``*.localhost`` does not resolve here, so ``repositoryUri`` names ``<registry-host>:<port>``
(``localhost`` by default: dockerd treats a host that resolves to loopback as an insecure
registry); docs/ecr.md says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecslocal import arns
from ecslocal.errors import AwsError

#: botocore shape ``RepositoryName`` (pattern; also the distribution spec's ``<name>``).
NAME_PATTERN = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
NAME_RE = re.compile(NAME_PATTERN)
NAME_MIN, NAME_MAX = 2, 256
#: How ECR's live message spells the regex (the ``\/`` of the model without its backslash).
_NAME_PATTERN_AS_ECR_WRITES_IT = NAME_PATTERN.replace(r"\/", "/")

#: An ECR registry host: ``<acct>.dkr.ecr.<region>.amazonaws.com`` (``.com.cn`` in China).
ECR_HOST_RE = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)"
    r"\.amazonaws\.com(?:\.cn)?(?::(?P<port>[0-9]+))?$"
)
#: ``algorithm:encoded`` [OCI image-spec descriptor.md "Digests"] (the registry's paths too).
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
#: OCI tag grammar [distribution-spec v1.1.1 "Pulling manifests"] (the registry's paths too).
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


def valid_name(name: str) -> bool:
    return NAME_MIN <= len(name) <= NAME_MAX and NAME_RE.fullmatch(name) is not None


def invalid_name(field: str = "repositoryName") -> AwsError:
    """ECR's answer to a name that fails the pattern, as the live service writes it (captured
    from CreateRepository with ``Bad_Name!``: InvalidParameterException, and the message
    below, quoted in public test suites written against AWS)."""
    return AwsError(
        "InvalidParameterException",
        f"Invalid parameter at '{field}' failed to satisfy constraint: 'must satisfy regular"
        f" expression '{_NAME_PATTERN_AS_ECR_WRITES_IT}''",
    )


def repository_arn(region: str, account: str, name: str) -> str:
    """``arn:aws:ecr:<region>:<acct>:repository/<name>`` (botocore Repository.repositoryArn)."""
    return arns.build("ecr", region, account, f"repository/{name}")


def parse_repository_arn(arn: str) -> tuple[str, str, str] | None:
    """``(region, account, name)`` of a repository ARN, or None."""
    parsed = arns.parse(arn)
    if parsed is None or parsed.service != "ecr" or not parsed.resource.startswith("repository/"):
        return None
    return parsed.region, parsed.account, parsed.resource.removeprefix("repository/")


def repository_uri(registry: str, name: str) -> str:
    """``<registry-host>:<port>/<name>`` (see the module docstring)."""
    return f"{registry}/{name}"


def proxy_endpoint(registry: str) -> str:
    """GetAuthorizationToken's ``proxyEndpoint``: the registry URL, no trailing slash
    (botocore AuthorizationData.proxyEndpoint; plain http here, the registry has no TLS)."""
    return f"http://{registry}"


@dataclass(frozen=True)
class ImageReference:
    """A task definition's ``image`` that names a repository of this daemon's registry."""

    repository: str
    tag: str | None
    digest: str | None
    #: The account an ECR host names (None for ``<registry-host>:<port>/…``): the task's
    #: account is used either way (issue 10 item 5: cloud task definitions run unchanged).
    account: str | None = None
    region: str | None = None


def parse_image_reference(image: str, registry_hosts: tuple[str, ...]) -> ImageReference | None:
    """``image`` as a local repository reference, or None when it names another registry.

    Local means the registry part is ``<any-account>.dkr.ecr.<region>.amazonaws.com`` (any
    port) or one of ``registry_hosts`` (``host:port`` strings, e.g. ``localhost:4600``). The
    rest is ``<name>[:<tag>][@<digest>]`` as the distribution reference grammar has it; no tag
    and no digest means ``latest`` (as docker and the ECS agent read it).
    """
    host, sep, rest = image.partition("/")
    if not sep or not rest:
        return None
    match = ECR_HOST_RE.match(host)
    if match is None and host not in registry_hosts:
        return None
    digest: str | None = None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not DIGEST_RE.match(digest):
            return None
    tag: str | None = None
    name, colon, maybe_tag = rest.rpartition(":")
    if colon and "/" not in maybe_tag:
        rest, tag = name, maybe_tag
        if not TAG_RE.match(tag):
            return None
    if not valid_name(rest):
        return None
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(
        repository=rest,
        tag=tag,
        digest=digest,
        account=match.group("account") if match else None,
        region=match.group("region") if match else None,
    )
