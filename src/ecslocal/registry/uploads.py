"""Blob endpoints: pull (GET/HEAD, with Range), push (POST/PATCH/PUT upload sessions,
monolithic or chunked), status (GET), cancel (DELETE) and cross-repository mount.

Statuses and headers: distribution-spec v1.1.1 "Pushing blobs" and "Endpoints" (end-2, end-4a/b,
end-5, end-6, end-10, end-11, end-13) and ``main``'s end-14 (DELETE cancels: 204). Upload
``Location`` headers are relative (the spec allows it; clients reuse them verbatim), carry the
session's uuid, and ``Range: 0-<last byte>`` says what the session holds (``0-0`` when empty,
as the reference implementation writes it). The body is streamed to disk
(:meth:`BlobStore.append_stream`) and never held whole in memory.

ECR has no blob delete (no API removes a layer; unreferenced layers are collected), so
``DELETE /v2/<name>/blobs/<digest>`` is the spec's answer for a registry that disables it: 405
``UNSUPPORTED`` (end-10; the reference implementation's words).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from aiohttp import web

from ecslocal.ecr.names import DIGEST_RE
from ecslocal.registry.blobs import (
    BlobStore,
    DigestMismatch,
    UploadOffsetError,
    UploadSizeError,
    UploadUnknown,
    parse_digest,
)
from ecslocal.registry.context import Context, body_chunks
from ecslocal.registry.errors import API_VERSION, RegistryError

if TYPE_CHECKING:
    from ecslocal.ecr.store import ImageStore

#: ``<start>-<end>`` (inclusive) [distribution-spec "Pushing a blob in chunks"]; the reference
#: implementation's clients also send ``bytes=<start>-<end>``.
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)$")


def checked_digest(value: str | None) -> str:
    """A sha256 digest from a query or path, else 400 ``DIGEST_INVALID``."""
    if not value:
        raise RegistryError("DIGEST_INVALID", "digest parameter is missing")
    if parse_digest(value) is None:
        if DIGEST_RE.match(value):  # well-formed, another algorithm
            raise RegistryError("DIGEST_INVALID", detail=f"unsupported digest algorithm: {value}")
        raise RegistryError("DIGEST_INVALID", detail=f"invalid digest: {value}")
    return value


def _range(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


class BlobEndpoints:
    def __init__(self, blobs: BlobStore, images: ImageStore, body_timeout: float) -> None:
        self.blobs = blobs
        self.images = images
        self.body_timeout = body_timeout

    # -- pull ------------------------------------------------------------------------------

    async def get(self, request: web.Request, ctx: Context, digest: str) -> web.StreamResponse:
        if request.method == "DELETE":
            raise RegistryError("UNSUPPORTED")
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED")
        digest = checked_digest(digest)
        path = self.blobs.path(digest)
        if path is None or not self.images.repo_has_blob(ctx.repo, digest):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        # A 200 lets the client skip the upload [distribution-spec "Pushing blobs": "the
        # client MAY skip the upload"]: re-linking the blob keeps it live for the grace
        # period, so the manifest PUT that follows finds it after a collection.
        self.images.link_blob(ctx.repo, digest)
        headers = {
            **API_VERSION,
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "ETag": f'"{digest}"',
            "Cache-Control": "max-age=31536000",
        }
        # FileResponse: sendfile, HEAD, Range (206/416) and Content-Length, from the open file
        # (a blob collected meanwhile stays readable until the answer is sent).
        return web.FileResponse(path, headers=headers)

    # -- push ------------------------------------------------------------------------------

    def _location(self, ctx: Context, upload_id: str) -> str:
        return f"/v2/{ctx.name}/blobs/uploads/{upload_id}"

    def _session_headers(self, ctx: Context, upload_id: str, size: int) -> dict[str, str]:
        return {
            **API_VERSION,
            "Location": self._location(ctx, upload_id),
            "Range": _range(size),
            "Docker-Upload-UUID": upload_id,
        }

    def _created(self, ctx: Context, digest: str) -> web.Response:
        return web.Response(
            status=201,
            headers={
                **API_VERSION,
                "Location": f"/v2/{ctx.name}/blobs/{digest}",
                "Docker-Content-Digest": digest,
            },
        )

    async def start(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        """POST ``/blobs/uploads/``: a session (202), a monolithic upload (``?digest=``,
        201), or a mount (``?mount=&from=``: 201 when the blob is in ``from``, a repository of
        the caller's account; else a new session, 202, as the spec says)."""
        if request.method != "POST":
            raise RegistryError("UNSUPPORTED")
        query = request.query
        if "mount" in query:
            digest = checked_digest(query.get("mount"))
            if self._mount(ctx, digest, query.get("from")):
                return self._created(ctx, digest)
        upload_id = self.blobs.start_upload(ctx.owner)
        if "digest" in query:
            digest = query.get("digest")
            try:
                return await self._finish(request, ctx, upload_id, digest)
            finally:
                self.blobs.abort(upload_id)  # nothing to undo after a commit
        return web.Response(status=202, headers=self._session_headers(ctx, upload_id, 0))

    def _mount(self, ctx: Context, digest: str, source: str | None) -> bool:
        if not source or self.blobs.size(digest) is None:
            return False
        repo = self.images.repository(ctx.caller.account, ctx.caller.region, source)
        if repo is None or not self.images.repo_has_blob(repo, digest):
            return False
        self.images.link_blob(ctx.repo, digest)
        return True

    async def session(
        self, request: web.Request, ctx: Context, upload_id: str
    ) -> web.StreamResponse:
        """``/blobs/uploads/<uuid>``: PATCH (a chunk), PUT (the last one, and commit), GET
        (status, 204), DELETE (cancel, 204)."""
        method = request.method
        if method not in ("GET", "HEAD", "DELETE", "PATCH", "PUT"):
            raise RegistryError("UNSUPPORTED")
        try:
            async with self.blobs.hold_upload(upload_id, ctx.owner) as size:
                if method == "GET" or method == "HEAD":
                    headers = self._session_headers(ctx, upload_id, size)
                    return web.Response(status=204, headers=headers)
                if method == "DELETE":
                    self.blobs.abort(upload_id)
                    return web.Response(status=204, headers=dict(API_VERSION))
                if method == "PATCH":
                    size = await self._append(request, ctx, upload_id, size)
                    headers = self._session_headers(ctx, upload_id, size)
                    return web.Response(status=202, headers=headers)
                return await self._finish(request, ctx, upload_id, request.query.get("digest"))
        except UploadUnknown:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None

    async def _append(self, request: web.Request, ctx: Context, upload_id: str, size: int) -> int:
        offset: int | None = None
        length = request.content_length
        content_range = request.headers.get("Content-Range")
        if content_range is not None:
            m = _CONTENT_RANGE.match(content_range.strip())
            start, end = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
            if m is None or end < start:
                raise RegistryError(
                    "RANGE_INVALID",
                    detail=f"bad Content-Range {content_range!r}",
                    headers=self._session_headers(ctx, upload_id, size),
                )
            offset = start
            if length is not None and length != end - start + 1:
                raise RegistryError(
                    "SIZE_INVALID",
                    detail=f"Content-Range {content_range} is not Content-Length {length}",
                    headers=self._session_headers(ctx, upload_id, size),
                )
            length = end - start + 1
        try:
            return await self.blobs.append_stream(
                upload_id, body_chunks(request, self.body_timeout), offset, length
            )
        except UploadOffsetError as exc:
            # 416 + where the session really ends [distribution-spec end-5]
            raise RegistryError(
                "RANGE_INVALID",
                detail=f"the upload holds {exc.size} bytes; a chunk must start there",
                headers=self._session_headers(ctx, upload_id, exc.size),
            ) from None
        except UploadSizeError as exc:
            raise RegistryError(
                "SIZE_INVALID", headers=self._session_headers(ctx, upload_id, exc.size)
            ) from None

    async def _finish(
        self, request: web.Request, ctx: Context, upload_id: str, digest: str | None
    ) -> web.Response:
        """The closing PUT (or single POST): the last chunk if any, then verify and commit.
        A digest that does not match drops the session (the reference implementation cancels
        it too): its bytes are not the blob the client meant."""
        digest = checked_digest(digest)
        size = self.blobs.upload_size(upload_id) or 0
        if request.body_exists:
            await self._append(request, ctx, upload_id, size)
        try:
            await asyncio.to_thread(self.blobs.commit, upload_id, digest)
        except DigestMismatch as exc:
            self.blobs.abort(upload_id)
            raise RegistryError("DIGEST_INVALID", detail=f"the content is {exc.actual}") from None
        self.images.link_blob(ctx.repo, digest)
        return self._created(ctx, digest)
