"""Test images built offline and reproducibly: Debian's ``busybox-static`` (/bin/busybox) packed
as a one-layer image in stdlib Python, written as an OCI image layout (a directory or its tar)
and as a ``docker save`` archive.

The same inputs give the same bytes (so the same digests) on every machine with the same
busybox: tar members are sorted, owned by 0:0 with no user/group names, mtime 0, PAX format;
gzip streams carry mtime 0 and no file name. Formats:
- OCI image layout and manifest: https://github.com/opencontainers/image-spec (image-layout.md,
  manifest.md, config.md, media-types.md).
- ``docker save``: manifest.json ([{"Config", "RepoTags", "Layers"}]) plus the config and
  uncompressed layer tars by path (moby image/tarexport, the format `docker load` reads).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
#: The applets linked into the rootfs (each a symlink to /bin/busybox).
APPLETS = ("sh", "ls", "cat", "echo", "env", "id", "pwd", "sleep", "true", "false", "wget")
CREATED = "1970-01-01T00:00:00Z"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: The runnable variant's config (the next issue runs images with it): every field ECS
#: task definitions can override, so that both "image default" and "override" are testable.
RUNNABLE_CONFIG: dict[str, Any] = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ['echo "hello from $GREETING in $(pwd) as $(id -u)"'],
    "Env": ["PATH=/bin", "GREETING=busybox"],
    "WorkingDir": "/srv",
    "User": "1000:1000",
    "StopSignal": "SIGQUIT",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def have_busybox() -> bool:
    return BUSYBOX.is_file()


def skip_without_busybox() -> None:
    import pytest

    if not have_busybox():
        pytest.skip(f"{BUSYBOX} is missing (Debian package busybox-static)")


def _member(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def tar_bytes(files: dict[str, bytes | str | None]) -> bytes:
    """A deterministic tar: path -> bytes (a 0755 file), str (a symlink target) or None (a
    0755 directory); parents are added, members sorted."""
    entries: dict[str, bytes | str | None] = {}
    for path, value in files.items():
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            entries.setdefault("/".join(parts[:i]), None)
        entries[path.strip("/")] = value
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            value = entries[name]
            if value is None:
                tar.addfile(_member(name, tarfile.DIRTYPE, 0o755))
            elif isinstance(value, str):
                tar.addfile(_member(name, tarfile.SYMTYPE, 0o777, link=value))
            else:
                tar.addfile(_member(name, tarfile.REGTYPE, 0o755, len(value)), io.BytesIO(value))
    return out.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return out.getvalue()


def busybox_rootfs(extra: dict[str, bytes | str | None] | None = None) -> bytes:
    """The rootfs layer as an uncompressed tar: /bin/busybox, its applets, /srv, /tmp."""
    files: dict[str, bytes | str | None] = {"bin/busybox": BUSYBOX.read_bytes()}
    files.update({f"bin/{applet}": "busybox" for applet in APPLETS})
    files.update({"srv": None, "tmp": None, "etc/passwd": b"root:x:0:0:root:/:/bin/sh\n"})
    files.update(extra or {})
    return tar_bytes(files)


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class TestImage:
    """One image: its config, layers (compressed as pushed) and manifest, all as bytes."""

    __test__ = False  # not a pytest test class

    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]  # the uncompressed layers' digests, as in the config
    layer_tars: tuple[bytes, ...] = field(repr=False)  # uncompressed, for docker save
    manifest: bytes = field(repr=False)
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        return {b.digest: b.data for b in (self.config, *self.layers)}

    def descriptor(self, ref_name: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest),
        }
        if ref_name:
            d["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        return d


def build_image(
    config: dict[str, Any] | None = None,
    layer_tars: Iterable[bytes] | None = None,
    docker: bool = False,
) -> TestImage:
    """An image of ``layer_tars`` (default: the busybox rootfs) with ``config`` as the image
    config's ``config`` object; ``docker`` gives Docker schema 2 media types instead of OCI."""
    tars = tuple(layer_tars) if layer_tars is not None else (busybox_rootfs(),)
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    layers = tuple(Blob(layer_type, gzip_bytes(t)) for t in tars)
    diff_ids = tuple(sha256(t) for t in tars)
    document = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": config or {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": CREATED, "created_by": "tests/images.py"} for _ in tars],
    }
    config_blob = Blob(DOCKER_CONFIG if docker else OCI_CONFIG, canonical(document))
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config_blob.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
    )
    return TestImage(config_blob, layers, diff_ids, tars, manifest, media_type)


def busybox_image(docker: bool = False) -> TestImage:
    return build_image(docker=docker)


def runnable_image(docker: bool = False) -> TestImage:
    """The busybox image with Entrypoint, Cmd, Env, WorkingDir, User and StopSignal set."""
    return build_image(config=dict(RUNNABLE_CONFIG), docker=docker)


def canonical(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


# -- writers ----------------------------------------------------------------------------------
def write_oci_layout(images: dict[str, TestImage] | TestImage, root: Path) -> Path:
    """An OCI image layout at ``root``: oci-layout, index.json (ref.name annotations = the
    dict's keys, e.g. "latest" or "repo:tag"), blobs/sha256/<hex>."""
    refs = images if isinstance(images, dict) else {"latest": images}
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for image in refs.values():
        for digest, data in {**image.blobs, image.digest: image.manifest}.items():
            (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [image.descriptor(name) for name, image in refs.items()],
    }
    (root / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_bytes(canonical(index))
    return root


def _tar_dir(root: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_dir():
                tar.addfile(_member(rel, tarfile.DIRTYPE, 0o755))
            else:
                data = path.read_bytes()
                tar.addfile(_member(rel, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return archive


def write_oci_archive(images: dict[str, TestImage] | TestImage, archive: Path) -> Path:
    """The OCI layout as one tar (what `skopeo copy ... oci-archive:` and `podman save
    --format oci-archive` write)."""
    staging = archive.with_name(archive.name + ".layout")
    try:
        write_oci_layout(images, staging)
        return _tar_dir(staging, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_docker_archive(images: dict[str, TestImage], archive: Path) -> Path:
    """A ``docker save`` archive of ``{"repo:tag": image}``: manifest.json, <config hex>.json and
    <diff_id hex>/layer.tar (uncompressed, as docker save writes them)."""
    files: dict[str, bytes] = {}
    manifest: list[dict[str, Any]] = []
    by_config: dict[str, dict[str, Any]] = {}
    for tag, image in images.items():
        hexid = image.config.digest.removeprefix("sha256:")
        if hexid in by_config:
            by_config[hexid]["RepoTags"].append(tag)
            continue
        files[f"{hexid}.json"] = image.config.data
        layers = []
        for diff_id, data in zip(image.diff_ids, image.layer_tars, strict=True):
            path = f"{diff_id.removeprefix('sha256:')}/layer.tar"
            files[path] = data
            layers.append(path)
        entry = {"Config": f"{hexid}.json", "RepoTags": [tag], "Layers": layers}
        by_config[hexid] = entry
        manifest.append(entry)
    files["manifest.json"] = canonical(manifest)
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            if "/" in name:
                tar.addfile(_member(name.split("/")[0], tarfile.DIRTYPE, 0o755))
            data = files[name]
            tar.addfile(_member(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return archive
