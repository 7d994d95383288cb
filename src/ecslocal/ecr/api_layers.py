"""ECR's layer operations (what the ECR proxy calls for ``docker push``/``pull``: botocore
InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, BatchCheckLayerAvailability,
GetDownloadUrlForLayer), over the registry's :class:`~ecslocal.registry.blobs.BlobStore`: an
upload begun here is the same session the /v2 routes use (its owner is
:func:`~ecslocal.registry.blobs.upload_owner_key`, as the registry's ``Context.owner``), held
under the same per-session lock (:meth:`BlobStore.hold_upload`), and a blob completed here is
in the repository for both.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

from ecslocal.auth.caller import Caller
from ecslocal.ecr.store import ImageStore, Repository
from ecslocal.errors import AwsError
from ecslocal.registry.blobs import (
    BlobStore,
    DigestMismatch,
    UploadOffsetError,
    UploadUnknown,
    upload_owner_key,
)

#: InitiateLayerUploadResponse.partSize: "the size … that Amazon ECR expects future layer
#: part uploads to be". ECR documents no value; ecslocal says 10 MiB (half the largest part
#: UploadLayerPart takes, twice LayerPartTooSmallException's 5 MiB minimum).
PART_SIZE = 10 * 1024 * 1024
#: LayerPartTooSmallException: "Layer parts must be at least 5 MiB in size". Not enforced:
#: CompleteLayerUpload sees parts only as the bytes they appended, and the last part (the only
#: one of a small layer) may be short; ecslocal accepts every part size (docs/ecr.md).
_LAYER_DIGEST = re.compile(r"[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+")  # botocore LayerDigest


def owner(repo: Repository) -> str:
    return upload_owner_key(repo.account, repo.region, repo.name)


def _upload_not_found(upload_id: str, repo: Repository) -> AwsError:
    return AwsError(
        "UploadNotFoundException",
        f"Upload with id '{upload_id}' not found for repository with name '{repo.name}' in"
        f" registry with id '{repo.account}'",
    )


class LayersMixin:
    """The layer operations of :class:`ecslocal.ecr.api.EcrApi`."""

    images: ImageStore
    blobs: BlobStore
    base_url: str

    def repo(self, p: dict[str, Any], caller: Caller) -> Repository:
        raise NotImplementedError  # EcrApi.repo

    def layer_handlers(self) -> dict[str, Any]:
        return {
            "InitiateLayerUpload": self.initiate_layer_upload,
            "UploadLayerPart": self.upload_layer_part,
            "CompleteLayerUpload": self.complete_layer_upload,
            "BatchCheckLayerAvailability": self.batch_check_layer_availability,
            "GetDownloadUrlForLayer": self.get_download_url_for_layer,
        }

    def initiate_layer_upload(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        return {"uploadId": self.blobs.start_upload(owner(repo)), "partSize": PART_SIZE}

    async def upload_layer_part(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        upload_id = p["uploadId"]
        try:
            async with self.blobs.hold_upload(upload_id, owner(repo)) as size:
                new_size = await self._append_part(p, upload_id, size)
        except UploadUnknown:
            raise _upload_not_found(upload_id, repo) from None
        return {
            "registryId": repo.account,
            "repositoryName": repo.name,
            "uploadId": upload_id,
            "lastByteReceived": new_size - 1,
        }

    async def _append_part(self, p: dict[str, Any], upload_id: str, size: int) -> int:
        data: bytes = p["layerPartBlob"]
        first, last = p["partFirstByte"], p["partLastByte"]
        if first != size or last - first + 1 != len(data):
            # InvalidLayerPartException: "The layer part size is not valid, or the first byte
            # specified is not consecutive to the last byte of a previous layer part upload."
            raise AwsError(
                "InvalidLayerPartException",
                f"The layer part size is not valid, or the first byte specified is not"
                f" consecutive to the last byte of a previous layer part upload (last valid"
                f" byte received: {size - 1}; this part: bytes {first}-{last},"
                f" {len(data)} bytes).",
            )
        try:
            return await asyncio.to_thread(self.blobs.append, upload_id, data, first)
        except UploadOffsetError as exc:
            raise AwsError(
                "InvalidLayerPartException",
                f"The first byte specified is not consecutive to the last byte of a previous"
                f" layer part upload (last valid byte received: {exc.size - 1}).",
            ) from None

    async def complete_layer_upload(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        upload_id = p["uploadId"]
        digest = p["layerDigests"][0]
        try:
            async with self.blobs.hold_upload(upload_id, owner(repo)) as size:
                await self._commit(repo, upload_id, digest, size)
        except UploadUnknown:
            raise _upload_not_found(upload_id, repo) from None
        return {
            "registryId": repo.account,
            "repositoryName": repo.name,
            "uploadId": upload_id,
            "layerDigest": digest,
        }

    async def _commit(self, repo: Repository, upload_id: str, digest: str, size: int) -> None:
        if size == 0:
            raise AwsError(
                "EmptyUploadException",
                "The specified layer upload does not contain any layer parts.",
            )
        if self.images.repo_has_blob(repo, digest):
            self.blobs.abort(upload_id)
            raise AwsError(
                "LayerAlreadyExistsException",
                f"Layer '{digest}' already exists in the repository with name '{repo.name}' in"
                f" registry with id '{repo.account}'",
            )
        try:
            await asyncio.to_thread(self.blobs.commit, upload_id, digest)
        except DigestMismatch as exc:
            raise AwsError(
                "InvalidLayerException",
                f"The layer digest calculation performed by Amazon ECR upon receipt of the"
                f" image layer does not match the digest specified: expected {digest},"
                f" calculated {exc.actual}",
            ) from None
        self.images.link_blob(repo, digest)

    def batch_check_layer_availability(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        layers: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for digest in dict.fromkeys(p["layerDigests"]):
            if not _LAYER_DIGEST.fullmatch(digest):
                failures.append(
                    {
                        "layerDigest": digest,
                        "failureCode": "InvalidLayerDigest",
                        "failureReason": f"Invalid layer digest '{digest}'",
                    }
                )
                continue
            if not self.images.repo_has_blob(repo, digest):
                failures.append(
                    {
                        "layerDigest": digest,
                        "failureCode": "MissingLayerDigest",
                        "failureReason": "Requested layer not found",
                    }
                )
                continue
            # AVAILABLE lets docker skip the upload: re-linked, the blob stays live for the
            # grace period (as after a registry blob HEAD), until the PutImage that follows.
            self.images.link_blob(repo, digest)
            layer: dict[str, Any] = {
                "layerDigest": digest,
                "layerAvailability": "AVAILABLE",
                "layerSize": self.blobs.size(digest),
            }
            declared = self.images.blob_in_image(repo, digest)
            if declared is not None and declared[0]:
                layer["mediaType"] = declared[0]
            layers.append(layer)
        return {"layers": layers, "failures": failures}

    def get_download_url_for_layer(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """The registry's blob route on this daemon (AWS answers a presigned S3 URL; this one
        takes the registry's ``Authorization: Basic`` token like any /v2 request)."""
        repo = self.repo(p, caller)
        digest = p["layerDigest"]
        if self.images.blob_in_image(repo, digest) is None or self.blobs.size(digest) is None:
            if self.images.repo_has_blob(repo, digest):
                raise AwsError(
                    "LayerInaccessibleException",
                    "The specified layer is not available because it is not associated with an"
                    " image. Unassociated image layers may be cleaned up at any time.",
                )
            raise AwsError(
                "LayersNotFoundException",
                f"The specified layer '{digest}' could not be found in the repository with name"
                f" '{repo.name}' in registry with id '{repo.account}'",
            )
        url = f"{self.base_url}/v2/{quote(repo.name)}/blobs/{quote(digest, safe=':')}"
        return {"downloadUrl": url, "layerDigest": digest}
