"""Manifest, tags-list and referrers endpoints, over the ECR API's :class:`ImageStore` (one
store: a registry push is what PutImage records, a pull what lastRecordedPullTime shows).

distribution-spec v1.1.1 end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE), end-8a/b (tags list),
end-12a/b (referrers). ECR's answers where they are known (notes §1.7, §1.9): an immutable
tag is ``TAG_INVALID`` "The image tag '<tag>' already exists in the '<repo>' repository and
cannot be overwritten because the repository is immutable."; a missing image ``MANIFEST_UNKNOWN``
"Requested image not found". Re-pushing the same manifest with the same tag succeeds (docker
push of an unchanged image does that), although PutImage calls it ImageAlreadyExistsException.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from ecslocal.ecr.api_images import referenced_reason
from ecslocal.ecr.manifest import OCI_INDEX
from ecslocal.ecr.names import DIGEST_RE, TAG_RE
from ecslocal.errors import AwsError
from ecslocal.registry import negotiate
from ecslocal.registry.context import Context, read_bounded
from ecslocal.registry.errors import API_VERSION, RegistryError, manifest_unknown
from ecslocal.registry.uploads import checked_digest

if TYPE_CHECKING:
    from ecslocal.ecr.store import Image, ImageStore

#: botocore ImageManifest: at most 4,194,304 characters (the spec: accept at least 4 MB).
MANIFEST_MAX = 4 * 1024 * 1024
#: Tags per page at most (ListImages' maxResults bound, 1000).
TAGS_MAX = 1000


def _is_digest(reference: str) -> bool:
    return ":" in reference


def registry_error(exc: AwsError, *, tag: str | None, name: str, account: str) -> RegistryError:
    """What a registry client is told when the ECR store refuses a push."""
    code = exc.code
    if code == "ImageTagAlreadyExistsException":
        return RegistryError(
            "TAG_INVALID",
            f"The image tag '{tag}' already exists in the '{name}' repository and cannot be"
            " overwritten because the repository is immutable.",
        )
    if code in ("LayersNotFoundException", "ReferencedImagesNotFoundException"):
        return RegistryError("MANIFEST_BLOB_UNKNOWN", detail=exc.message)
    if code == "ImageDigestDoesNotMatchException":
        return RegistryError("DIGEST_INVALID", detail=exc.message)
    if code in ("InvalidParameterException", "ValidationException"):
        return RegistryError("MANIFEST_INVALID", detail=exc.message)
    if code == "RepositoryNotFoundException":
        return RegistryError("NAME_UNKNOWN", exc.message)
    if code in ("LimitExceededException", "ThrottlingException"):
        return RegistryError("TOOMANYREQUESTS", detail=exc.message)
    return RegistryError("UNKNOWN", exc.message)


class ManifestEndpoints:
    def __init__(
        self, images: ImageStore, body_timeout: float, deleted: Callable[[], None]
    ) -> None:
        self.images = images
        self.body_timeout = body_timeout
        self.deleted = deleted  # a manifest went: its blobs may be garbage now

    async def manifest(self, request: web.Request, ctx: Context, ref: str) -> web.StreamResponse:
        method = request.method
        if method in ("GET", "HEAD"):
            return self._get(request, ctx, ref)
        if method == "PUT":
            return await self._put(request, ctx, ref)
        if method == "DELETE":
            return self._delete(ctx, ref)
        raise RegistryError("UNSUPPORTED")

    def _find(self, ctx: Context, ref: str) -> Image | None:
        if _is_digest(ref):
            if not DIGEST_RE.match(ref):
                return None
            return self.images.image(ctx.repo, digest=ref)
        if not TAG_RE.match(ref):
            return None
        return self.images.image(ctx.repo, tag=ref)

    def _get(self, request: web.Request, ctx: Context, ref: str) -> web.Response:
        image = self._find(ctx, ref)
        if image is None:
            raise manifest_unknown()
        types = negotiate.accepted(request.headers.getall("Accept", []))
        if not negotiate.acceptable(image.media_type, types):
            child = None
            if image.manifest and image.media_type in negotiate.INDEX_TYPES:
                digest = negotiate.default_platform_child(image.manifest, types)
                child = self.images.image(ctx.repo, digest=digest) if digest else None
            if child is None:
                raise RegistryError(
                    "MANIFEST_UNKNOWN", negotiate.not_acceptable_message(image.media_type)
                )
            image = child
        if request.method == "GET":
            self.images.record_pull(ctx.repo, image.digest)
        headers = {
            **API_VERSION,
            "Content-Type": image.media_type,
            "Docker-Content-Digest": image.digest,
            "ETag": f'"{image.digest}"',
        }
        return web.Response(body=image.manifest, headers=headers)

    async def _put(self, request: web.Request, ctx: Context, ref: str) -> web.Response:
        tag: str | None = None
        digest: str | None = None
        if _is_digest(ref):
            digest = checked_digest(ref)
        elif TAG_RE.match(ref):
            tag = ref
        else:
            raise RegistryError("TAG_INVALID", detail=f"invalid tag: {ref}")
        body = await read_bounded(request, MANIFEST_MAX, self.body_timeout)
        if body is None:
            raise RegistryError(
                "MANIFEST_INVALID", detail=f"manifest over {MANIFEST_MAX} bytes", status=413
            )
        media_type = request.headers.get("Content-Type")
        if media_type is not None:
            media_type = media_type.split(";", 1)[0].strip() or None
        try:
            image = self.images.put_image(ctx.repo, body, media_type, tag, digest)
        except AwsError as exc:
            if exc.code != "ImageAlreadyExistsException":
                raise registry_error(
                    exc, tag=tag, name=ctx.name, account=ctx.caller.account
                ) from None
            # the same manifest under the same tag again: a registry push just succeeds
            existing = self.images.image(ctx.repo, tag=tag) if tag else None
            if existing is None and digest is not None:
                existing = self.images.image(ctx.repo, digest=digest)
            if existing is None:
                raise registry_error(
                    exc, tag=tag, name=ctx.name, account=ctx.caller.account
                ) from None
            image = existing
        headers = {
            **API_VERSION,
            "Location": f"/v2/{ctx.name}/manifests/{image.digest}",
            "Docker-Content-Digest": image.digest,
        }
        if image.subject:
            headers["OCI-Subject"] = image.subject  # referrers are supported [end-12]
        return web.Response(status=201, headers=headers)

    def _delete(self, ctx: Context, ref: str) -> web.Response:
        """By digest: the image and its tags, as BatchDeleteImage by digest (ECR added the
        registry's manifest DELETE later: aws/containers-roadmap#1229, "Shipped"; before, it
        answered 404). By tag: 405 ``UNSUPPORTED``, the spec's answer for a registry without
        tag deletion: no source says ECR deletes tags over the registry API, and
        BatchDeleteImage by tag does."""
        if not _is_digest(ref):
            raise RegistryError("UNSUPPORTED", detail="delete a tag with BatchDeleteImage")
        digest = checked_digest(ref)
        if self.images.image(ctx.repo, digest=digest) is None:
            raise manifest_unknown()
        parents = self.images.parents(ctx.repo, digest)
        if parents:
            # As BatchDeleteImage: an image an index lists stays (ImageReferencedByManifestList).
            # ECR documents no registry code for it; DENIED (403) says "refused", where 405
            # UNSUPPORTED would tell the client the registry deletes nothing.
            raise RegistryError("DENIED", referenced_reason(parents), detail={"digest": digest})
        try:
            self.images.delete_image(ctx.repo, digest)
        except AwsError as exc:
            raise registry_error(exc, tag=None, name=ctx.name, account=ctx.caller.account) from None
        self.deleted()
        return web.Response(status=202, headers=dict(API_VERSION))

    def tags(self, request: web.Request, ctx: Context) -> web.Response:
        """``{"name", "tags"}`` in lexical order; ``n`` (a page) and ``last`` (exclusive);
        a ``Link: <…>; rel="next"`` when a page is full and more follow [end-8b]."""
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED")
        tags = sorted(self.images.tags(ctx.repo))
        last = request.query.get("last")
        if last is not None:
            tags = [t for t in tags if t > last]
        limit: int | None = None
        raw_n = request.query.get("n")
        if raw_n is not None:
            if not raw_n.isdigit():
                raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw_n})
            limit = min(int(raw_n), TAGS_MAX)
        elif len(tags) > TAGS_MAX:
            limit = TAGS_MAX
        headers = dict(API_VERSION)
        page = tags if limit is None else tags[:limit]
        if limit and len(tags) > limit:
            query = f"n={limit}&last={quote(page[-1], safe='')}"
            headers["Link"] = f'</v2/{ctx.name}/tags/list?{query}>; rel="next"'
        return web.json_response({"name": ctx.name, "tags": page}, headers=headers)

    def referrers(self, request: web.Request, ctx: Context, digest: str) -> web.Response:
        """An OCI image index of the manifests whose ``subject`` is ``digest`` (never a 404
        for a known repository: none is an empty index), ``artifactType`` filtered on request
        with ``OCI-Filters-Applied`` [end-12a/b]."""
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED")
        digest = checked_digest(digest)
        wanted = request.query.get("artifactType")
        headers = {**API_VERSION, "Content-Type": OCI_INDEX}
        entries: list[dict[str, Any]] = []
        for image in self.images.referrers(ctx.repo, digest):
            if wanted is not None and image.artifact_media_type != wanted:
                continue
            entries.append(_descriptor(image))
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return web.Response(body=json.dumps(body).encode(), headers=headers)


def _descriptor(image: Image) -> dict[str, Any]:
    """A referrer's descriptor: its artifactType (else its config's mediaType) and its
    annotations [distribution-spec "Listing Referrers"]."""
    entry: dict[str, Any] = {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": len(image.manifest),
    }
    if image.artifact_media_type:
        entry["artifactType"] = image.artifact_media_type
    try:
        annotations = json.loads(image.manifest).get("annotations")
    except (ValueError, AttributeError):
        annotations = None
    if isinstance(annotations, dict) and annotations:
        entry["annotations"] = annotations
    return entry
