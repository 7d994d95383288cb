"""The engine's image step: which images are pulled from a registry it knows, and the words ECS
uses when a pull fails.

The engine sees images through :class:`ImageSource`, a narrow protocol: the daemon satisfies it
with an adapter over ECR's image store (``ecslocal/ecr/pulls.py``), so nothing here depends on
ECR. For each container whose image the source claims (and pulls: a pull-through cache
without the image gives None), the task runs the agent's manifest stage
(images-networking-exec.md §3.1): the tag becomes a digest, the pull is recorded, and the
container reports the digest (``imageDigest``); the task's ``pullStartedAt`` is the first such
pull's start and ``pullStoppedAt`` the last one's end (§3.2, agent ``SetPullStartedAt`` only if
unset, ``SetPullStoppedAt`` after every pull). An image the source does not claim or pull
(``busybox`` not in the cache) is the backend's business (today: a host command, nothing
pulled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: The platform a task runs on here (Fargate's default ``runtimePlatform``; the process
#: backend runs on this machine, which the tests assume is linux/amd64 as Fargate's X86_64).
PLATFORM = "linux/amd64"

#: What a failed pull is: the repository, or the tag/digest in it, is not there; or an index
#: lists no manifest for :data:`PLATFORM`.
REPOSITORY, MANIFEST, PLATFORM_MISSING = "repository", "manifest", "platform"


@dataclass(frozen=True, slots=True)
class PulledImage:
    """An image the source resolved for one container."""

    #: The digest ECS reports as ``imageDigest``: of the manifest the reference names (an
    #: index's own digest; the agent keeps DistributionInspect's ``Descriptor.Digest``, §3.1).
    digest: str
    #: Docker's image ID of the image that runs: ``sha256`` of its config blob (the linux/amd64
    #: manifest's, for an index) — the task metadata's ``ImageID``.
    image_id: str


class PullFailed(Exception):
    """The image could not be pulled; :func:`cannot_pull_reason` words it as ECS does."""

    def __init__(self, kind: str, reference: str, repository: str, registry_id: str) -> None:
        super().__init__(f"{kind}: {reference}")
        self.kind = kind
        #: The reference as the puller spells it (``:latest`` added when it had no tag).
        self.reference = reference
        self.repository = repository
        #: The account whose registry was asked (ECR's ``registryId``).
        self.registry_id = registry_id


class ImageSource(Protocol):
    """Images pulled from a registry the daemon serves (its ECR)."""

    def claims(self, image: str) -> bool:
        """Whether ``image`` names a repository of this source (then :meth:`pull` it)."""
        ...

    def pull(self, image: str, account: str, region: str) -> PulledImage | None:
        """Resolve ``image`` in ``account``'s registry of ``region`` and record the pull.
        Raises :class:`PullFailed`; None when the source has nothing to pull for it after all
        (a pull-through cache without the image: the backend's business, as unclaimed)."""
        ...


class ImageSources:
    """Several sources as one: the first that claims an image pulls it (the daemon's ECR,
    then its pull-through cache of other registries)."""

    def __init__(self, *sources: ImageSource) -> None:
        self.sources = sources

    def _source(self, image: str) -> ImageSource | None:
        return next((s for s in self.sources if s.claims(image)), None)

    def claims(self, image: str) -> bool:
        return self._source(image) is not None

    def pull(self, image: str, account: str, region: str) -> PulledImage | None:
        source = self._source(image)
        return source.pull(image, account, region) if source is not None else None


#: Fargate (containerd) retries the manifest resolution; captures show "5 time(s)" for a
#: missing tag (and 7 for one platform case): one count is used here.
_FARGATE_RETRIES = 5


def cannot_pull_reason(failure: PullFailed, launch_type: str | None) -> str:
    """The container ``reason`` (and task ``stoppedReason``) of a failed pull, in the words of
    the platform that would have pulled (images-networking-exec.md §3.3, captures):

    * FARGATE (containerd): ``CannotPullContainerError: pull image manifest has been retried 5
      time(s): failed to resolve ref <ref>: <ref>: not found`` for a missing repository or
      tag (ECR answers both with a 404; containerd's resolver says ``<ref>: not found``, the
      caller prefixes ``failed to resolve ref <ref>``), and ``… image Manifest does not contain
      descriptor matching platform 'linux/amd64'`` for an index without it;
    * EC2 (dockerd): ``CannotPullContainerError: Error response from daemon: manifest for <ref>
      not found: manifest unknown: Requested image not found``; a missing repository is
      ``repository <host>/<repo> not found: name unknown: The repository with name '<repo>'
      does not exist in the registry with id '<acct>'`` (ECR User Guide, pull-through cache
      troubleshooting, quoting dockerd); an index without the platform is dockerd's ``no
      matching manifest for linux/amd64 in the manifest list entries``.
    """
    if launch_type == "FARGATE":
        head = f"pull image manifest has been retried {_FARGATE_RETRIES} time(s)"
        if failure.kind == PLATFORM_MISSING:
            detail = f"image Manifest does not contain descriptor matching platform '{PLATFORM}'"
        else:
            detail = f"failed to resolve ref {failure.reference}: {failure.reference}: not found"
        return f"CannotPullContainerError: {head}: {detail}"
    if failure.kind == REPOSITORY:
        host = failure.reference.split("/", 1)[0]
        detail = (
            f"repository {host}/{failure.repository} not found: name unknown: The repository"
            f" with name '{failure.repository}' does not exist in the registry with id"
            f" '{failure.registry_id}'"
        )
    elif failure.kind == PLATFORM_MISSING:
        detail = f"no matching manifest for {PLATFORM} in the manifest list entries"
    else:
        detail = (
            f"manifest for {failure.reference} not found: manifest unknown: Requested image"
            " not found"
        )
    return f"CannotPullContainerError: Error response from daemon: {detail}"
