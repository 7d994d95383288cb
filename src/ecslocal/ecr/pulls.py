"""ECR as the task engine's :class:`ecslocal.runtime.images.ImageSource`: a task definition's
ECR image (``<any-account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest]``, or the
daemon's own ``<registry-host>:<port>/<repo>``) resolves to the repository ``<repo>`` of the
*task's* account and region, so cloud task definitions run unchanged (issue 10 item 5;
docs/ecr.md says how to turn it off). The daemon wires it in; the runtime never imports ECR.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from ecslocal.ecr import manifest as mf
from ecslocal.ecr.names import ImageReference, parse_image_reference
from ecslocal.ecr.store import Image, ImageStore, Repository
from ecslocal.runtime.images import (
    MANIFEST,
    PLATFORM_MISSING,
    REPOSITORY,
    PulledImage,
    PullFailed,
)
from ecslocal.storage.db import StorageError

log = logging.getLogger("ecslocal.ecr")


def _spelled(image: str, ref: ImageReference) -> str:
    """The reference as a puller spells it: as written, ``:latest`` added when it had neither
    tag nor digest (docker and containerd normalise so)."""
    host = image.split("/", 1)[0]
    out = f"{host}/{ref.repository}"
    if ref.tag is not None:  # parse_image_reference made it "latest" when none was written
        out += f":{ref.tag}"
    if ref.digest:
        out += f"@{ref.digest}"
    return out


def _platform_child(index: Image) -> str | None:
    """The digest of an index's linux/amd64 manifest (image-spec image-index.md ``platform``)."""
    try:
        entries = json.loads(index.manifest).get("manifests") or []
    except (ValueError, AttributeError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if (
            isinstance(platform, dict)
            and platform.get("os") == "linux"
            and platform.get("architecture") == "amd64"
            and isinstance(entry.get("digest"), str)
        ):
            return str(entry["digest"])
    return None


class EcrImageSource:
    """Resolves a container's ECR image through :class:`ImageStore` at task start."""

    def __init__(self, images: ImageStore, registry_hosts: Callable[[], tuple[str, ...]]) -> None:
        self.images = images
        #: ``host:port`` names of this daemon's registry (known once the port is bound).
        self.registry_hosts = registry_hosts

    def _reference(self, image: str) -> ImageReference | None:
        return parse_image_reference(image, self.registry_hosts())

    def claims(self, image: str) -> bool:
        return self._reference(image) is not None

    def pull(self, image: str, account: str, region: str) -> PulledImage:
        ref = self._reference(image)
        assert ref is not None, image
        return resolve_in_repository(self.images, ref, _spelled(image, ref), account, region)


def resolve_in_repository(
    images: ImageStore, ref: ImageReference, spelled: str, account: str, region: str
) -> PulledImage:
    """Resolve ``ref`` in ``account``'s repository of ``region`` and record the pull (the ECR
    images of task definitions, and the pull-through cache's, ecr/pullthrough.py). ``spelled``
    is the reference as the puller spells it, for the failure's words. Raises PullFailed."""

    def failed(kind: str) -> PullFailed:
        return PullFailed(kind, spelled, ref.repository, account)

    repo = images.repository(account, region, ref.repository)
    if repo is None:
        raise failed(REPOSITORY)
    # A digest wins over a tag written beside it (docker and containerd pull by digest).
    found = images.image(repo, digest=ref.digest) if ref.digest else images.image(repo, tag=ref.tag)
    if found is None:
        raise failed(MANIFEST)
    runs = _runnable(images, repo, found)
    if runs is None:
        raise failed(PLATFORM_MISSING)
    # What a docker pull's manifest GETs record (ECR's lastRecordedPullTime).
    try:
        for pulled in {found.digest, runs.digest}:
            images.record_pull(repo, pulled)
    except StorageError as exc:  # the image was read: a full disk must not fail the task
        log.warning("pull of %s not recorded: %s", spelled, exc)
    config = mf.parse(runs.manifest, runs.media_type).config
    image_id = config.digest if config is not None else runs.digest
    return PulledImage(digest=found.digest, image_id=image_id)


def _runnable(images: ImageStore, repo: Repository, found: Image) -> Image | None:
    """The image manifest that would run: ``found``, or an index's linux/amd64 entry."""
    if found.media_type not in mf.INDEX_TYPES:
        return found
    child = _platform_child(found)
    if child is None:
        return None
    image = images.image(repo, digest=child)
    if image is None or image.media_type in mf.INDEX_TYPES:
        return None
    return image
