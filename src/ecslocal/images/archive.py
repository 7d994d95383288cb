"""Images on disk, read into blobs and manifests without loading a layer into memory: an OCI
image layout (a directory or a tar of one, what ``skopeo copy … oci-archive:`` and ``podman save
--format oci-archive`` write, and what ``docker save`` writes since Docker 25) or a classic
``docker save`` archive (manifest.json + config + uncompressed layer tars).

A blob is a byte range of a file: ``[offset, offset + size)`` of the layout's blob file or of
the tar itself (tarfile gives each member's data offset), so pushing streams from disk. A
compressed archive (``docker save | gzip``) is unpacked to a temporary directory first, since
a gzip stream cannot be read from an offset.

Formats: OCI image-spec image-layout.md and image-index.md ("org.opencontainers.image.ref.name"
annotation); moby image/tarexport (manifest.json's Config/RepoTags/Layers); containerd's
"io.containerd.image.name" annotation (docker save 25+).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ecslocal.images.media import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    canonical,
    sha256_digest,
)

CHUNK = 1 << 20
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class ArchiveError(Exception):
    """The file is not an image archive this reader knows, or is inconsistent."""


@dataclass(frozen=True)
class BlobSource:
    """A blob's bytes: ``size`` bytes of ``path`` from ``offset``."""

    digest: str
    size: int
    path: Path
    offset: int = 0

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.size
            while left > 0:
                data = f.read(min(chunk_size, left))
                if not data:
                    raise ArchiveError(f"{self.path} ends inside blob {self.digest}")
                left -= len(data)
                yield data

    def read(self) -> bytes:
        return b"".join(self.chunks())


@dataclass(frozen=True)
class Manifest:
    """A manifest (image or index) with its exact bytes."""

    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.data)  # type: ignore[no-any-return]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class ArchiveImage:
    """One top-level image of an archive and the names it was saved under (possibly none)."""

    manifest: Manifest
    names: tuple[str, ...]


@dataclass
class Archive:
    images: list[ArchiveImage]
    blobs: dict[str, BlobSource]
    manifests: dict[str, Manifest]  # every manifest, children of indexes included, by digest

    def blob(self, digest: str) -> BlobSource:
        try:
            return self.blobs[digest]
        except KeyError:
            raise ArchiveError(f"the archive has no blob {digest}") from None

    def walk(self, manifest: Manifest) -> Iterator[Manifest]:
        """Children before parents (an index's manifests must be pushed before it)."""
        if manifest.is_index:
            for child in manifest.document.get("manifests") or []:
                found = self.manifests.get(child.get("digest", ""))
                if found is None:
                    raise ArchiveError(f"the archive has no manifest {child.get('digest')}")
                yield from self.walk(found)
        yield manifest

    def layer_descriptors(self, manifest: Manifest) -> list[dict[str, Any]]:
        """The config and layers of an image manifest (non-distributable ones excluded)."""
        doc = manifest.document
        out = [doc["config"], *(doc.get("layers") or [])]
        return [d for d in out if not d.get("urls")]


def _media_type_of(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError:
        raise ArchiveError("a manifest is not JSON") from None
    media_type = doc.get("mediaType") if isinstance(doc, dict) else None
    if not media_type:
        # image-spec: mediaType is optional; an index has "manifests", a manifest "config".
        media_type = (
            "application/vnd.oci.image.index.v1+json"
            if "manifests" in doc
            else "application/vnd.oci.image.manifest.v1+json"
        )
    if media_type not in MANIFEST_TYPES | INDEX_TYPES:
        raise ArchiveError(f"unsupported manifest media type {media_type}")
    return str(media_type)


def _names(descriptor: dict[str, Any]) -> tuple[str, ...]:
    annotations = descriptor.get("annotations") or {}
    if annotations.get(CONTAINERD_NAME):
        return (str(annotations[CONTAINERD_NAME]),)
    if annotations.get(REF_NAME):
        return (str(annotations[REF_NAME]),)
    return ()


class _Files:
    """A directory or an uncompressed tar, as paths to (file, offset, size)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        if path.is_file():
            with tarfile.open(path, "r:") as tar:
                for info in tar:
                    if info.isfile():
                        self.members[info.name.removeprefix("./")] = info

    def exists(self, name: str) -> bool:
        if self.members:
            return name in self.members
        return (self.path / name).is_file()

    def source(self, name: str, digest: str | None = None) -> BlobSource:
        if self.members:
            info = self.members.get(name)
            if info is None:
                raise ArchiveError(f"{self.path} has no {name}")
            return BlobSource(digest or "", info.size, self.path, info.offset_data)
        file = self.path / name
        if not file.is_file():
            raise ArchiveError(f"{self.path} has no {name}")
        return BlobSource(digest or "", file.stat().st_size, file)

    def read(self, name: str) -> bytes:
        return self.source(name).read()


def _hash(source: BlobSource) -> str:
    h = hashlib.sha256()
    for chunk in source.chunks():
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def _read_oci(files: _Files) -> Archive:
    index = Manifest(_media_type_of(files.read("index.json")), files.read("index.json"))
    blobs: dict[str, BlobSource] = {}
    manifests: dict[str, Manifest] = {}

    def blob(digest: str) -> BlobSource:
        algorithm, _, hexpart = digest.partition(":")
        if algorithm != "sha256" or not hexpart:
            raise ArchiveError(f"unsupported digest {digest}")
        return files.source(f"blobs/{algorithm}/{hexpart}", digest)

    def visit(descriptor: dict[str, Any]) -> Manifest:
        digest = str(descriptor["digest"])
        data = blob(digest).read()
        if sha256_digest(data) != digest:
            raise ArchiveError(f"manifest {digest} does not match its digest")
        manifest = Manifest(_media_type_of(data), data)
        manifests[digest] = manifest
        doc = manifest.document
        if manifest.is_index:
            for child in doc.get("manifests") or []:
                if files.exists(f"blobs/sha256/{str(child['digest']).partition(':')[2]}"):
                    visit(child)
        else:
            for d in [doc["config"], *(doc.get("layers") or [])]:
                if not d.get("urls"):
                    blobs[d["digest"]] = blob(d["digest"])
        return manifest

    images = []
    for descriptor in index.document.get("manifests") or []:
        images.append(ArchiveImage(visit(descriptor), _names(descriptor)))
    return Archive(images, blobs, manifests)


def _read_docker_save(files: _Files) -> Archive:
    """manifest.json's images as Docker schema 2 manifests whose layers are the archive's
    tars as they are (``…rootfs.diff.tar``, or ``.tar.gzip`` when a layer is gzipped), so the
    digests are the layers' own and no byte is recompressed."""
    try:
        entries = json.loads(files.read("manifest.json"))
    except ValueError:
        raise ArchiveError("manifest.json is not JSON") from None
    blobs: dict[str, BlobSource] = {}
    manifests: dict[str, Manifest] = {}
    images = []
    for entry in entries:
        config = files.source(entry["Config"])
        config = BlobSource(_hash(config), config.size, config.path, config.offset)
        blobs[config.digest] = config
        layers = []
        for name in entry.get("Layers") or []:
            layer = files.source(name)
            layer = BlobSource(_hash(layer), layer.size, layer.path, layer.offset)
            blobs[layer.digest] = layer
            head = next(layer.chunks(2), b"")
            media_type = DOCKER_LAYER_GZIP if head == b"\x1f\x8b" else DOCKER_LAYER
            layers.append({"mediaType": media_type, "size": layer.size, "digest": layer.digest})
        manifest = Manifest(
            DOCKER_MANIFEST,
            canonical(
                {
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": {
                        "mediaType": DOCKER_CONFIG,
                        "size": config.size,
                        "digest": config.digest,
                    },
                    "layers": layers,
                }
            ),
        )
        manifests[manifest.digest] = manifest
        images.append(ArchiveImage(manifest, tuple(entry.get("RepoTags") or ())))
    return Archive(images, blobs, manifests)


def _docker_names(archive: Archive, entries: list[dict[str, Any]]) -> None:
    """Name each image by manifest.json's RepoTags ("web:1") rather than the containerd
    annotation ("docker.io/library/web:1"), matching by config blob."""
    tags = {str(e.get("Config", "")).rsplit("/", 1)[-1]: e.get("RepoTags") or [] for e in entries}
    for i, item in enumerate(archive.images):
        if item.manifest.is_index:
            continue
        names = tags.get(item.manifest.document["config"]["digest"].partition(":")[2])
        if names:
            archive.images[i] = ArchiveImage(item.manifest, tuple(names))


def _is_compressed(path: Path) -> bool:
    with open(path, "rb") as f:
        magic = f.read(6)
    return magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00"


def _unpack(path: Path, into: Path) -> None:
    opener: IO[bytes] = gzip.open(path) if _is_compressed(path) else open(path, "rb")  # noqa: SIM115
    with opener, tarfile.open(fileobj=opener, mode="r|*") as tar:
        tar.extractall(into, filter="data")


def _read(path: Path) -> Archive:
    try:
        files = _Files(path)
        if files.exists("index.json") and files.exists("oci-layout"):
            archive = _read_oci(files)
            if files.exists("manifest.json"):  # docker save 25+: both; RepoTags are familiar
                _docker_names(archive, json.loads(files.read("manifest.json")))
            return archive
        if files.exists("manifest.json"):
            return _read_docker_save(files)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{path}: not a tar archive or OCI layout ({exc})") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"{path}: malformed image archive ({exc!r})") from None
    raise ArchiveError(
        f"{path}: neither an OCI layout (index.json, oci-layout) nor a"
        " docker save archive (manifest.json)"
    )


@contextlib.contextmanager
def open_archive(path: Path) -> Iterator[Archive]:
    """Read ``path`` (an OCI layout directory, an OCI archive, a docker save archive, either
    possibly gzipped); the blobs stay readable until the context ends."""
    if not path.exists():
        raise ArchiveError(f"{path}: no such file or directory")
    staging: Path | None = None
    try:
        if path.is_file() and _is_compressed(path):
            staging = Path(tempfile.mkdtemp(prefix="ecslocal-load-"))
            try:
                _unpack(path, staging)
            except (OSError, tarfile.TarError, EOFError) as exc:
                raise ArchiveError(f"{path}: cannot unpack: {exc}") from None
            path = staging
        archive = _read(path)
        yield archive
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
