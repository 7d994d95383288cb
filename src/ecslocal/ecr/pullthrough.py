"""The pull-through cache: images of other registries (Docker Hub, public ECR, quay, any
``host[:port]``) kept in the account's ECR under the repository name ECR's pull-through cache
rules give them, ``<prefix>/<upstream repository>`` (docs/ecr.md "Pull-through cache").

Prefixes are the defaults the ECR console gives its rules (ECR User Guide,
pull-through-cache-working.html: ``docker-hub/library/<image>`` for Docker Hub official images,
``ecr-public/…``, ``kubernetes/…``, ``quay/…``; CreatePullThroughCacheRule lists the upstream
URLs: registry-1.docker.io, public.ecr.aws, quay.io, registry.k8s.io, ghcr.io,
registry.gitlab.com). Any other registry is cached under its ``host[:port]`` with ``:`` made
``-`` (a repository name has no ``:``), e.g. ``127.0.0.1-5001/busybox``.

:class:`RemoteImageSource` is the engine's view of it (runtime/images.py ``ImageSource``): a
reference to another registry that is in the cache resolves like an ECR image (digest, pull
recorded); one that is not is left to the backend (``None``), without a network call, unless
``pull_missing`` is set — the seam for the runc backend, which needs the image's filesystem
and so pulls through (``fetch`` copies the image upstream -> cache first).
"""

from __future__ import annotations

from collections.abc import Callable

from ecslocal.ecr.names import ImageReference, valid_name
from ecslocal.ecr.pulls import resolve_in_repository
from ecslocal.ecr.store import ImageStore
from ecslocal.images.transfer import Reference, hub_repository, parse_reference
from ecslocal.runtime.images import MANIFEST, REPOSITORY, PulledImage, PullFailed

#: Upstream registry host -> the ECR repository prefix of its pull-through cache rule.
UPSTREAM_PREFIXES: dict[str, str] = {
    "docker.io": "docker-hub",
    "registry-1.docker.io": "docker-hub",
    "index.docker.io": "docker-hub",
    "public.ecr.aws": "ecr-public",
    "quay.io": "quay",
    "ghcr.io": "github",
    "registry.k8s.io": "kubernetes",
    "registry.gitlab.com": "gitlab",
}

#: ``fetch(reference, account, region)``: copy ``reference`` from its registry into the cache.
Fetch = Callable[[Reference, str, str], None]


def cache_prefix(host: str | None) -> str:
    """The repository prefix of ``host``'s cache (no host: Docker Hub)."""
    if host is None:
        return "docker-hub"
    return UPSTREAM_PREFIXES.get(host, host.replace(":", "-"))


def cache_repository(ref: Reference) -> str:
    """``<prefix>/<upstream repository>``: Docker Hub's one-component (official) names get
    their ``library/`` (ECR User Guide: "For Docker Hub official images, the /library prefix
    must be included")."""
    upstream = hub_repository(ref) if cache_prefix(ref.host) == "docker-hub" else ref.repository
    return f"{cache_prefix(ref.host)}/{upstream}"


def remote_reference(image: str) -> Reference | None:
    """``image`` as another registry's reference, or None when it is not one docker could
    pull (then nothing is claimed and the backend runs the host command as before)."""
    try:
        ref = parse_reference(image)
    except ValueError:
        return None
    return ref if valid_name(cache_repository(ref)) else None


class RemoteImageSource:
    """Images of other registries, through the cache in the task's account and region."""

    def __init__(
        self, images: ImageStore, pull_missing: bool = False, fetch: Fetch | None = None
    ) -> None:
        if pull_missing and fetch is None:
            raise ValueError("pull_missing needs fetch")
        self.images = images
        #: Pull an uncached image through (runc backend) rather than leave it to the backend.
        self.pull_missing = pull_missing
        self.fetch = fetch

    def claims(self, image: str) -> bool:
        return remote_reference(image) is not None

    def pull(self, image: str, account: str, region: str) -> PulledImage | None:
        ref = remote_reference(image)
        assert ref is not None, image
        tag = ref.tag or (None if ref.digest else "latest")
        cached = ImageReference(cache_repository(ref), tag, ref.digest)
        spelled = str(ref) if (ref.tag or ref.digest) else f"{ref}:latest"
        try:
            return resolve_in_repository(self.images, cached, spelled, account, region)
        except PullFailed as failure:
            if failure.kind not in (REPOSITORY, MANIFEST):
                raise  # cached, but no linux/amd64 in its index: the pull fails as upstream
            if not self.pull_missing:
                return None  # not cached: the backend's business, no network call
        assert self.fetch is not None
        self.fetch(ref, account, region)
        return resolve_in_repository(self.images, cached, spelled, account, region)
