"""What ECR reads in a manifest: its media type, the blobs and manifests it references, its
subject and artifact type, and the size DescribeImages reports.

Media types: OCI image-spec ``media-types.md`` (v1.1.1) and Docker's image manifest v2
schema 2. ECR's PutImage takes ``imageManifestMediaType`` for a manifest "that does not contain
the mediaType field" (botocore PutImageRequest.imageManifestMediaType).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ecslocal.errors import AwsError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


@dataclass(frozen=True)
class Descriptor:
    media_type: str | None
    digest: str
    size: int


@dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    digest: str
    #: The config descriptor of an image manifest (None for an index).
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    #: The manifests an index lists.
    manifests: tuple[Descriptor, ...]
    subject: str | None
    artifact_type: str | None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """The config and the layers: the blobs the repository must hold."""
        return ((self.config,) if self.config else ()) + self.layers

    @property
    def artifact_media_type(self) -> str | None:
        """DescribeImages' ``artifactMediaType``: the manifest's ``artifactType`` (OCI 1.1),
        else its config's mediaType (how ECR fills it for images: the model says only "the
        artifact media type of the image"; the config type is ecslocal's reading)."""
        if self.artifact_type:
            return self.artifact_type
        return self.config.media_type if self.config else None

    @property
    def image_size(self) -> int:
        """ImageDetail.imageSizeInBytes of an image manifest: its layers' (compressed) sizes
        and its config's, as the manifest declares them (the model: compressed size, "smaller
        than docker images shows"). An index's size is computed by the store from its
        children ("the max size of all manifests in the list")."""
        return sum(d.size for d in self.blobs)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"Invalid parameter at 'imageManifest': {where} is not a descriptor")
    digest, size = value.get("digest"), value.get("size")
    media_type = value.get("mediaType")
    if not isinstance(digest, str) or ":" not in digest:
        raise _invalid(f"Invalid parameter at 'imageManifest': {where} has no valid digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"Invalid parameter at 'imageManifest': {where} has no valid size")
    if media_type is not None and not isinstance(media_type, str):
        raise _invalid(f"Invalid parameter at 'imageManifest': {where} has a bad mediaType")
    return Descriptor(media_type, digest, size)


def parse(manifest: bytes, media_type: str | None) -> ParsedManifest:
    """Read ``manifest`` (bytes as pushed: the digest is of these bytes). ``media_type`` is
    what the client declared (PutImage's imageManifestMediaType, the registry's
    Content-Type); the manifest's own ``mediaType`` field must agree with it."""
    try:
        # UTF-8 only (json.loads would also take UTF-16/32 bytes, which PutImage's string
        # imageManifest and BatchGetImage's answer cannot carry).
        doc = json.loads(manifest.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise _invalid("Invalid parameter at 'imageManifest': the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("Invalid parameter at 'imageManifest': the manifest is not a JSON object")
    own = doc.get("mediaType")
    if own is not None and not isinstance(own, str):
        raise _invalid("Invalid parameter at 'imageManifest': mediaType is not a string")
    if own and media_type and own != media_type:
        raise _invalid(
            f"Invalid parameter at 'imageManifestMediaType': '{media_type}' does not match"
            f" the manifest's mediaType '{own}'"
        )
    kind = own or media_type
    if kind is None:
        # An OCI manifest need not carry mediaType; its shape says what it is.
        if doc.get("schemaVersion") == 2 and "config" in doc:
            kind = OCI_MANIFEST
        elif doc.get("schemaVersion") == 2 and "manifests" in doc:
            kind = OCI_INDEX
        else:
            raise _invalid(
                "Invalid parameter at 'imageManifestMediaType': the manifest has no mediaType"
                " field, so imageManifestMediaType is required"
            )
    if kind not in MANIFEST_TYPES:
        raise _invalid(
            f"Invalid parameter at 'imageManifestMediaType': unsupported media type '{kind}'"
        )
    if doc.get("schemaVersion") != 2:
        raise _invalid("Invalid parameter at 'imageManifest': schemaVersion must be 2")
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    if kind in IMAGE_TYPES:
        config = _descriptor(doc.get("config"), "config")
        raw_layers = doc.get("layers", [])
        if not isinstance(raw_layers, list):
            raise _invalid("Invalid parameter at 'imageManifest': layers is not a list")
        layers = tuple(_descriptor(v, f"layers[{i}]") for i, v in enumerate(raw_layers))
    else:
        raw = doc.get("manifests", [])
        if not isinstance(raw, list):
            raise _invalid("Invalid parameter at 'imageManifest': manifests is not a list")
        manifests = tuple(_descriptor(v, f"manifests[{i}]") for i, v in enumerate(raw))
    subject = None
    if doc.get("subject") is not None:
        subject = _descriptor(doc["subject"], "subject").digest
    artifact_type = doc.get("artifactType")
    return ParsedManifest(
        media_type=kind,
        digest=digest_of(manifest),
        config=config,
        layers=layers,
        manifests=manifests,
        subject=subject,
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )
