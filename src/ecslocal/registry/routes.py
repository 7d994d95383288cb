"""The OCI distribution API v2 on the daemon's port: aiohttp routes under ``/v2/``.

Every request: ``Docker-Distribution-Api-Version: registry/2.0`` on the answer; ECR's Basic
auth (:mod:`ecslocal.registry.auth`); the path parsed from the right
(:mod:`ecslocal.registry.paths`); the repository looked up in the caller's account and region
(none: ECR's ``NAME_UNKNOWN``; ECR never creates a repository on push). Then the blob,
upload, manifest, tags-list or referrers endpoint answers.

Garbage collection (:class:`Collector`): blobs no image references (``ImageStore.live_blobs``)
and stale upload sessions go a few seconds after a manifest DELETE here or
:meth:`Registry.collect_soon` (the ECR API's BatchDeleteImage and DeleteRepository call it:
the daemon passes it as ``EcrApi.deleted``, so ecr never imports these routes),
and every :data:`GC_INTERVAL` seconds from the daemon's start in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ecslocal.api.gateway import BodyTimeout
from ecslocal.ecr.names import valid_name
from ecslocal.registry import paths
from ecslocal.registry.auth import TokenVerifier, Unauthorized, authenticate, challenge
from ecslocal.registry.blobs import BlobStore
from ecslocal.registry.context import Context, drop
from ecslocal.registry.errors import API_VERSION, RegistryError, name_unknown
from ecslocal.registry.manifests import ManifestEndpoints
from ecslocal.registry.uploads import BlobEndpoints
from ecslocal.storage.db import StorageError

if TYPE_CHECKING:
    from ecslocal.ecr.store import ImageStore

log = logging.getLogger("ecslocal.registry")

#: Seconds between two periodic collections.
GC_INTERVAL = 600.0
#: Seconds from a deletion to the collection it asks for (deletions in a row: one collection).
GC_DELAY = 2.0


class Collector:
    """Deletes unreferenced blobs and stale uploads: soon after a deletion, and periodically.

    The collection runs on the event loop, between two requests: a manifest PUT (which makes
    its blobs live) cannot interleave with it. It walks only the blob directories (a few
    hundred entries for a local registry's images)."""

    def __init__(self, blobs: BlobStore, images: ImageStore, interval: float = GC_INTERVAL):
        self.blobs = blobs
        self.images = images
        self.interval = interval
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.collected = 0

    def ensure_running(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="registry-gc")

    def soon(self) -> None:
        self.ensure_running()
        assert self._wake is not None
        self._wake.set()

    def collect(self) -> int:
        deleted = self.blobs.collect(self.images.live_blobs())
        self.collected += deleted
        if deleted:
            log.info("registry: collected %d unreferenced blob(s) and stale upload(s)", deleted)
        return deleted

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
                await asyncio.sleep(GC_DELAY)
            self._wake.clear()
            try:
                self.collect()
            except (OSError, StorageError) as exc:  # next round tries again
                log.warning("registry: garbage collection failed: %s", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Registry:
    def __init__(
        self,
        images: ImageStore,
        tokens: TokenVerifier,
        blobs: BlobStore,
        *,
        body_timeout: float = 60.0,
        gc_interval: float = GC_INTERVAL,
    ) -> None:
        self.images = images
        self.tokens = tokens
        self.blobs = blobs
        self.collector = Collector(blobs, images, gc_interval)
        self.blob_endpoints = BlobEndpoints(blobs, images, body_timeout)
        self.manifest_endpoints = ManifestEndpoints(images, body_timeout, self.collect_soon)

    def routes(self) -> list[web.RouteDef]:
        """To be registered before the container-facing sub-apps (see paths.route_patterns).
        Called in the daemon's event loop, it starts the periodic collection too (else the
        first registry request does)."""
        with contextlib.suppress(RuntimeError):  # no running loop: started on first request
            asyncio.get_running_loop()
            self.collector.ensure_running()
        return [web.route("*", pattern, self.handle) for pattern in paths.route_patterns()]

    def collect_soon(self) -> None:
        """Ask for a garbage collection in a moment (call from the event loop)."""
        self.collector.soon()

    async def close(self) -> None:
        await self.collector.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.collector.ensure_running()
        head = request.method == "HEAD"
        try:
            return await self._serve(request)
        except Unauthorized:
            return challenge(request)
        except RegistryError as exc:
            return exc.response(head)
        except StorageError as exc:
            return RegistryError("UNKNOWN", exc.message).response(head)
        except BodyTimeout:
            drop(request)
            return web.Response(status=408)  # never sent: the connection is gone

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        where = paths.parse(request.rel_url.path)
        if where is None:
            raise RegistryError("UNSUPPORTED", status=404, detail="no such endpoint")
        caller = authenticate(request, self.tokens)
        if where.kind == paths.BASE:
            if request.method not in ("GET", "HEAD"):
                raise RegistryError("UNSUPPORTED")
            return web.json_response({}, headers=dict(API_VERSION))
        if not valid_name(where.name):
            raise RegistryError("NAME_INVALID", detail={"name": where.name})
        repo = self.images.repository(caller.account, caller.region, where.name)
        if repo is None:
            raise name_unknown(where.name, caller.account)
        ctx = Context(caller, repo, where.name)
        kind, ref = where.kind, where.reference
        if kind == paths.BLOB:
            return await self.blob_endpoints.get(request, ctx, ref)
        if kind == paths.UPLOAD_START:
            return await self.blob_endpoints.start(request, ctx)
        if kind == paths.UPLOAD:
            return await self.blob_endpoints.session(request, ctx, ref)
        if kind == paths.MANIFEST:
            return await self.manifest_endpoints.manifest(request, ctx, ref)
        if kind == paths.TAGS:
            return self.manifest_endpoints.tags(request, ctx)
        return self.manifest_endpoints.referrers(request, ctx, ref)
