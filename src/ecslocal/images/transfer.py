"""Copying images: an archive's image to a registry, a registry's image to another registry
(blob by blob, streamed through, never a whole layer in memory), a registry's image into an OCI
layout on disk. Children of an index go before the index, blobs before their manifest, as the
spec's push order requires (a registry may refuse a manifest whose blobs it lacks)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ecslocal.images.archive import Archive, Manifest
from ecslocal.images.client import Progress, RegistryClient, RegistryError
from ecslocal.images.media import INDEX_TYPES, OCI_INDEX, canonical, is_digest

LOOPBACK = ("localhost", "127.", "[::1]")
DOCKER_HUB = "registry-1.docker.io"


class Reporter(Protocol):
    def blob(self, digest: str, size: int) -> AbstractContextManager[Progress]: ...
    def blob_done(self, digest: str, size: int, how: str) -> None: ...


class QuietReporter:
    def blob(self, digest: str, size: int) -> AbstractContextManager[Progress]:
        return nullcontext(lambda n: None)

    def blob_done(self, digest: str, size: int, how: str) -> None:
        pass


@dataclass(frozen=True)
class Reference:
    """``[host[:port]/]repository[:tag][@digest]`` in docker's grammar
    (distribution/reference): the first component is a host when it has a '.' or ':' or is
    ``localhost``; no host means Docker Hub (``library/`` for one-component names)."""

    host: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        name = f"{self.host}/{self.repository}" if self.host else self.repository
        return (
            name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")
        )


def parse_reference(text: str) -> Reference:
    name, _, digest = text.partition("@")
    if digest and not is_digest(digest):
        raise ValueError(f"invalid digest in {text!r}")
    host: str | None = None
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, name = first, rest
    repository, tag = name, None
    if ":" in name.rsplit("/", 1)[-1]:
        repository, _, tag = name.rpartition(":")
    if not repository or repository != repository.lower() or "//" in repository:
        raise ValueError(f"invalid repository name in {text!r}")
    return Reference(host, repository, tag or None, digest or None)


def registry_url(host: str | None) -> str:
    """Plain HTTP for loopback (as dockerd treats 127.0.0.0/8 and podman/skopeo are told
    --tls-verify=false for it), HTTPS elsewhere; no host is Docker Hub."""
    if host is None or host == "docker.io":
        return f"https://{DOCKER_HUB}"
    return f"http://{host}" if host.startswith(LOOPBACK) else f"https://{host}"


def hub_repository(ref: Reference) -> str:
    if ref.host in (None, "docker.io") and "/" not in ref.repository:
        return f"library/{ref.repository}"
    return ref.repository


def _push_blob(
    client: RegistryClient,
    repository: str,
    digest: str,
    size: int,
    chunks: Callable[[], Iterator[bytes]],
    reporter: Reporter,
    chunk_size: int | None,
    mount_from: Iterable[str],
) -> None:
    with reporter.blob(digest, size) as progress:
        how = client.push_blob(
            repository,
            digest,
            size,
            chunks,
            chunk_size=chunk_size,
            mount_from=mount_from,
            progress=progress,
        )
    reporter.blob_done(digest, size, how)


def push_archive_image(
    archive: Archive,
    manifest: Manifest,
    client: RegistryClient,
    repository: str,
    tag: str | None,
    reporter: Reporter | None = None,
    chunk_size: int | None = None,
    mount_from: Iterable[str] = (),
) -> str:
    """Push one of ``archive``'s images (an index with its children) to ``repository``,
    tagged ``tag`` when given; returns the top manifest's digest."""
    reporter = reporter or QuietReporter()
    mounts = list(mount_from)
    for item in archive.walk(manifest):
        if not item.is_index:
            for descriptor in archive.layer_descriptors(item):
                source = archive.blob(descriptor["digest"])
                _push_blob(
                    client,
                    repository,
                    source.digest,
                    source.size,
                    source.chunks,
                    reporter,
                    chunk_size,
                    mounts,
                )
        reference = tag if item is manifest and tag else item.digest
        client.push_manifest(repository, reference, item.data, item.media_type)
    return manifest.digest


def copy_image(
    source: RegistryClient,
    src_repository: str,
    reference: str,
    dest: RegistryClient,
    dst_repository: str,
    tag: str | None,
    reporter: Reporter | None = None,
    chunk_size: int | None = None,
) -> str:
    """Copy an image (or index, with every child) between registries, blobs streamed from
    the source's GET into the destination's PUT; the manifests' bytes are kept exactly."""
    reporter = reporter or QuietReporter()
    top = source.get_manifest(src_repository, reference)

    def blob_stream(digest: str) -> Callable[[], Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            response = source.request(
                "GET",
                f"/v2/{src_repository}/blobs/{digest}",
                source.scope(src_repository),
                stream=True,
            )
            with closing(response):
                if response.status_code != 200:
                    response.read()
                    raise RegistryError(
                        response.status_code,
                        "BLOB_UNKNOWN",
                        f"GET blob {digest}: HTTP {response.status_code}",
                    )
                yield from response.iter_bytes(1 << 20)

        return chunks

    def visit(media_type: str, data: bytes, digest: str, reference: str) -> None:
        doc: dict[str, Any] = json.loads(data)
        if media_type in INDEX_TYPES:
            for child in doc.get("manifests") or []:
                pulled = source.get_manifest(src_repository, child["digest"])
                visit(pulled.media_type, pulled.data, pulled.digest, pulled.digest)
        else:
            for d in [doc["config"], *(doc.get("layers") or [])]:
                if not d.get("urls"):
                    _push_blob(
                        dest,
                        dst_repository,
                        d["digest"],
                        int(d["size"]),
                        blob_stream(d["digest"]),
                        reporter,
                        chunk_size,
                        (),
                    )
        dest.push_manifest(dst_repository, reference, data, media_type)

    visit(top.media_type, top.data, top.digest, tag or top.digest)
    return top.digest


def pull_to_layout(
    client: RegistryClient,
    repository: str,
    reference: str,
    layout: Path,
    ref_name: str | None = None,
    reporter: Reporter | None = None,
) -> str:
    """Pull an image (or index) into an OCI image layout at ``layout``; its digest."""
    reporter = reporter or QuietReporter()
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def visit(digest_or_tag: str) -> tuple[str, str, int]:
        pulled = client.get_manifest(repository, digest_or_tag)
        doc: dict[str, Any] = json.loads(pulled.data)
        if pulled.media_type in INDEX_TYPES:
            for child in doc.get("manifests") or []:
                visit(child["digest"])
        else:
            for d in [doc["config"], *(doc.get("layers") or [])]:
                target = blobs / d["digest"].removeprefix("sha256:")
                if d.get("urls") or target.exists():
                    continue
                with reporter.blob(d["digest"], int(d["size"])) as progress:
                    client.pull_blob(repository, d["digest"], target, progress)
                reporter.blob_done(d["digest"], int(d["size"]), "pulled")
        (blobs / pulled.digest.removeprefix("sha256:")).write_bytes(pulled.data)
        return pulled.media_type, pulled.digest, len(pulled.data)

    media_type, digest, size = visit(reference)
    descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if ref_name:
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_bytes(canonical(index))
    return digest
