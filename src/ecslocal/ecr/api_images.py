"""ECR's image operations: PutImage, BatchGetImage, BatchDeleteImage, ListImages and
DescribeImages (botocore ``ecr/2015-09-21`` shapes of the same names).

A missing image is a ``failures[]`` entry in the batch operations (ImageFailure: failureCode,
failureReason) and an ImageNotFoundException in DescribeImages; the reasons are ECR's own as
public suites written against AWS quote them (``Requested image not found``, ``Invalid request
parameters: both tag and digest cannot be null``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ecslocal.auth.caller import Caller
from ecslocal.ecr import manifest as mf
from ecslocal.ecr.paging import invalid, page
from ecslocal.ecr.store import Image, ImageStore, Repository
from ecslocal.errors import AwsError

#: botocore LayerDigest's pattern, which ECR quotes for a bad imageDigest.
DIGEST_PATTERN = "[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+"
_DIGEST_RE = re.compile(DIGEST_PATTERN)

NOT_FOUND = ("ImageNotFound", "Requested image not found")
MISSING = ("MissingDigestAndTag", "Invalid request parameters: both tag and digest cannot be null")
BAD_DIGEST = (
    "InvalidImageDigest",
    f"Invalid request parameters: image digest should satisfy the regex '{DIGEST_PATTERN}'",
)
TAG_MISMATCH = (
    "ImageTagDoesNotMatchDigest",
    "Invalid request parameters: given tag does not map to the given digest",
)


def _failure(image_id: dict[str, Any], code: tuple[str, str]) -> dict[str, Any]:
    return {"imageId": image_id, "failureCode": code[0], "failureReason": code[1]}


def _check_id(image_id: dict[str, Any]) -> tuple[str, str] | None:
    """The failure of an ImageIdentifier that names nothing valid, else None."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if digest is None and tag is None:
        return MISSING
    if digest is not None and not _DIGEST_RE.fullmatch(digest):
        return BAD_DIGEST
    return None


def _unique(ids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for image_id in ids:
        seen.setdefault((image_id.get("imageDigest"), image_id.get("imageTag")), image_id)
    return list(seen.values())


def referenced_reason(parents: list[str]) -> str:
    """The failureReason of ImageReferencedByManifestList (ecslocal's words; ECR documents the
    code only), also the registry's manifest DELETE's message."""
    return f"Requested image referenced by manifest list: {parents}"


class ImagesMixin:
    """The image operations of :class:`ecslocal.ecr.api.EcrApi`."""

    images: ImageStore
    deleted: Callable[[], None]  # EcrApi.deleted

    def repo(self, p: dict[str, Any], caller: Caller) -> Repository:
        raise NotImplementedError  # EcrApi.repo

    def image_handlers(self) -> dict[str, Any]:
        return {
            "PutImage": self.put_image,
            "BatchGetImage": self.batch_get_image,
            "BatchDeleteImage": self.batch_delete_image,
            "ListImages": self.list_images,
            "DescribeImages": self.describe_images,
        }

    @staticmethod
    def _image_shape(repo: Repository, image: Image, tag: str | None) -> dict[str, Any]:
        image_id: dict[str, Any] = {"imageDigest": image.digest}
        if tag is not None:
            image_id["imageTag"] = tag
        return {
            "registryId": repo.account,
            "repositoryName": repo.name,
            "imageId": image_id,
            "imageManifest": image.manifest.decode(),
            "imageManifestMediaType": image.media_type,
        }

    def put_image(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        manifest = p["imageManifest"].encode()
        tag = p.get("imageTag")
        digest = mf.digest_of(manifest)
        existing = self.images.image(repo, digest=digest)
        if existing is not None and (tag is None or tag in existing.tags):
            # ImageAlreadyExistsException: "no changes to the manifest or image tag after the
            # last push" (botocore). The wording is moto's; a CI script retagging on real ECR
            # greps its answer for "already exists in the repository with name".
            with_tag = f" and tag '{tag}'" if tag is not None else ""
            raise AwsError(
                "ImageAlreadyExistsException",
                f"Image with digest '{digest}'{with_tag} already exists in the repository with"
                f" name '{repo.name}' in registry with id '{repo.account}'",
            )
        image = self.images.put_image(
            repo, manifest, p.get("imageManifestMediaType"), tag, p.get("imageDigest")
        )
        return {"image": self._image_shape(repo, image, tag)}

    def batch_get_image(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        accepted = p.get("acceptedMediaTypes")
        images: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for image_id in _unique(p["imageIds"]):
            failure = _check_id(image_id)
            if failure is not None:
                failures.append(_failure(image_id, failure))
                continue
            tag = image_id.get("imageTag")
            image = self.images.image(repo, digest=image_id.get("imageDigest"), tag=tag)
            if image is None:
                failures.append(_failure(image_id, NOT_FOUND))
                continue
            if accepted and image.media_type not in accepted:
                # ECR converts nothing here; its code for this case is not documented
                # (ImageFailureCode has none): ecslocal's choice, see docs/ecr.md.
                failures.append(
                    _failure(
                        image_id,
                        (
                            "UnsupportedImageType",
                            f"The image's media type {image.media_type} is not one of the"
                            " acceptedMediaTypes",
                        ),
                    )
                )
                continue
            self.images.record_pull(repo, image.digest)
            images.append(self._image_shape(repo, image, tag))
        return {"images": images, "failures": failures}

    def batch_delete_image(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """By tag: that tag goes (and the image with its last tag); by digest: the image and
        all its tags (botocore BatchDeleteImage)."""
        repo = self.repo(p, caller)
        deleted: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for image_id in _unique(p["imageIds"]):
            failure = _check_id(image_id)
            if failure is not None:
                failures.append(_failure(image_id, failure))
                continue
            digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
            if tag is not None:
                named = self.images.image(repo, tag=tag)
                if named is None:
                    failures.append(_failure(image_id, NOT_FOUND))
                elif digest is not None and named.digest != digest:
                    failures.append(_failure(image_id, TAG_MISMATCH))
                elif named.tags == (tag,) and self.images.parents(repo, named.digest):
                    # Its last tag would take the image, which an index still lists.
                    failures.append(_failure(image_id, self._referenced(repo, named.digest)))
                else:
                    self.images.untag(repo, tag)
                    deleted.append({"imageDigest": named.digest, "imageTag": tag})
                continue
            image = self.images.image(repo, digest=digest)
            if image is None:
                failures.append(_failure(image_id, NOT_FOUND))
                continue
            if self.images.parents(repo, image.digest):
                failures.append(_failure(image_id, self._referenced(repo, image.digest)))
                continue
            self.images.delete_image(repo, image.digest)
            if image.tags:
                deleted += [{"imageDigest": image.digest, "imageTag": t} for t in image.tags]
            else:
                deleted.append({"imageDigest": image.digest})
        if deleted:
            self.deleted()
        return {"imageIds": deleted, "failures": failures}

    def _referenced(self, repo: Repository, digest: str) -> tuple[str, str]:
        """ImageFailureCode ImageReferencedByManifestList (the reason is ecslocal's)."""
        return (
            "ImageReferencedByManifestList",
            referenced_reason(self.images.parents(repo, digest)),
        )

    @staticmethod
    def _status_filter(p: dict[str, Any]) -> tuple[str, bool]:
        """(tagStatus, whether ACTIVE images are asked for): every image here is ACTIVE
        (ImageStatus; archival is not served), the default imageStatus filter."""
        f = p.get("filter") or {}
        return f.get("tagStatus") or "ANY", (f.get("imageStatus") or "ACTIVE") in ("ACTIVE", "ANY")

    def list_images(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """``{imageDigest, imageTag}`` per tag and ``{imageDigest}`` per untagged image."""
        repo = self.repo(p, caller)
        tag_status, active = self._status_filter(p)
        ids: list[dict[str, Any]] = []
        for image in self.images.images(repo) if active else []:
            if image.tags and tag_status != "UNTAGGED":
                ids += [{"imageDigest": image.digest, "imageTag": t} for t in image.tags]
            elif not image.tags and tag_status != "TAGGED":
                ids.append({"imageDigest": image.digest})
        items, token = page(ids, p)
        out: dict[str, Any] = {"imageIds": items}
        if token:
            out["nextToken"] = token
        return out

    @staticmethod
    def _detail(repo: Repository, image: Image) -> dict[str, Any]:
        out: dict[str, Any] = {
            "registryId": repo.account,
            "repositoryName": repo.name,
            "imageDigest": image.digest,
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_at,
            "imageManifestMediaType": image.media_type,
            "imageStatus": "ACTIVE",
        }
        if image.tags:
            out["imageTags"] = list(image.tags)
        if image.artifact_media_type:
            out["artifactMediaType"] = image.artifact_media_type
        if image.last_pull is not None:
            out["lastRecordedPullTime"] = image.last_pull
        if image.subject:
            out["subjectManifestDigest"] = image.subject
        return out

    def describe_images(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        ids = p.get("imageIds")
        if ids:
            if p.get("maxResults") or p.get("nextToken"):
                # DescribeImagesRequest.maxResults: "This option cannot be used when you
                # specify images with imageIds."
                raise invalid(
                    "Invalid parameter at 'maxResults': this option cannot be used when"
                    " imageIds is specified"
                )
            details: dict[str, dict[str, Any]] = {}
            for image_id in ids:
                digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
                image = (
                    self.images.image(repo, digest=digest, tag=tag)
                    if digest is not None or tag is not None
                    else None
                )
                if image is None:
                    raise self._image_not_found(repo, digest, tag)
                details.setdefault(image.digest, self._detail(repo, image))
            return {"imageDetails": list(details.values())}
        tag_status, active = self._status_filter(p)
        found = [
            i
            for i in (self.images.images(repo) if active else [])
            if tag_status == "ANY" or bool(i.tags) == (tag_status == "TAGGED")
        ]
        items, token = page(found, p)
        out: dict[str, Any] = {"imageDetails": [self._detail(repo, i) for i in items]}
        if token:
            out["nextToken"] = token
        return out

    @staticmethod
    def _image_not_found(repo: Repository, digest: str | None, tag: str | None) -> AwsError:
        """ECR's live message, literal ``'null'`` for the half not given (notes §1.7)."""
        return AwsError(
            "ImageNotFoundException",
            f"The image with imageId {{imageDigest:'{digest or 'null'}', imageTag:"
            f"'{tag or 'null'}'}} does not exist within the repository with name '{repo.name}'"
            f" in the registry with id '{repo.account}'",
        )
