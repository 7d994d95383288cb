"""Filling the pull-through cache from the daemon's side: :class:`StoreFetch` is a
``RemoteImageSource`` ``fetch`` that copies an upstream image straight into ECR's store (blobs
streamed from the upstream GET into a blob-store upload session, digest-checked on commit;
manifests stored with their exact bytes, children of an index before the index). It is the
pull_missing seam's implementation for the runc backend (next issue), which needs the image's
filesystem. The process backend does not use it: ``ecslocal image pull`` fills the cache from
the CLI through the registry protocol instead (cli_image.py).

It blocks (the network): a caller on the event loop runs it in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from typing import Any

from ecslocal.ecr.pullthrough import cache_repository
from ecslocal.ecr.store import ImageStore, Repository
from ecslocal.errors import AwsError
from ecslocal.images.client import RegistryClient, RegistryError
from ecslocal.images.media import INDEX_TYPES
from ecslocal.images.transfer import Reference, hub_repository, registry_url
from ecslocal.registry.blobs import BlobStore

#: ``credentials(host)``: (username, password) for an upstream registry, or None (anonymous).
Credentials = Callable[[str | None], tuple[str, str] | None]


class StoreFetch:
    """Copy ``reference`` from its registry into ``<prefix>/<repo>`` of the account's ECR."""

    def __init__(
        self,
        images: ImageStore,
        blobs: BlobStore,
        credentials: Credentials = lambda host: None,
        client: Callable[[str, str | None, str | None], RegistryClient] = RegistryClient,
    ) -> None:
        self.images, self.blobs = images, blobs
        self.credentials, self.client = credentials, client

    def __call__(self, ref: Reference, account: str, region: str) -> None:
        name = cache_repository(ref)
        repo = self.images.repository(account, region, name)
        creds = self.credentials(ref.host)
        user, password = creds if creds else (None, None)
        upstream = hub_repository(ref)
        with self.client(registry_url(ref.host), user, password) as src:
            top = src.get_manifest(upstream, ref.reference)  # before the repository is made
            if repo is None:
                repo = self.images.create_repository(account, region, name)
            tag = ref.tag or (None if ref.digest else "latest")
            self._manifest(src, upstream, repo, top.media_type, top.data, tag)

    def _manifest(
        self,
        src: RegistryClient,
        upstream: str,
        repo: Repository,
        media_type: str,
        data: bytes,
        tag: str | None,
    ) -> None:
        doc: dict[str, Any] = json.loads(data)
        if media_type in INDEX_TYPES:
            for child in doc.get("manifests") or []:
                pulled = src.get_manifest(upstream, child["digest"])
                self._manifest(src, upstream, repo, pulled.media_type, pulled.data, None)
        else:
            for d in [doc["config"], *(doc.get("layers") or [])]:
                if not d.get("urls"):
                    self._blob(src, upstream, repo, d["digest"])
        try:
            self.images.put_image(repo, data, media_type or None, tag)
        except AwsError as exc:
            if exc.code != "ImageAlreadyExistsException":
                raise

    def _blob(self, src: RegistryClient, upstream: str, repo: Repository, digest: str) -> None:
        if self.blobs.size(digest) is None:
            upload = self.blobs.start_upload()
            try:
                response = src.request(
                    "GET", f"/v2/{upstream}/blobs/{digest}", src.scope(upstream), stream=True
                )
                with closing(response):
                    if response.status_code != 200:
                        response.read()
                        raise RegistryError(
                            response.status_code, "BLOB_UNKNOWN", f"GET blob {digest}"
                        )
                    for chunk in response.iter_bytes(1 << 20):
                        self.blobs.append(upload, chunk)
                self.blobs.commit(upload, digest)  # checks the digest
            except BaseException:
                self.blobs.abort(upload)
                raise
        self.images.link_blob(repo, digest)
