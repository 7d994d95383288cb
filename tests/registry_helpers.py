"""Helpers of the registry tests: a test image built from a few bytes (a gzipped tar layer, a
config, an OCI manifest; reproducible), a daemon of their own with an ECR token, uploads."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCOUNT = "000000000000"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    layer: bytes
    config: bytes
    manifest: bytes

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha(self.layer): self.layer, sha(self.config): self.config}

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    def write_layout(self, path: Path, tag: str) -> None:
        """An OCI image layout (image-spec image-layout.md), for skopeo's ``oci:`` transport."""
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        for data in (self.layer, self.config, self.manifest):
            (path / "blobs" / "sha256" / sha(data).split(":")[1]).write_bytes(data)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        entry = {
            "mediaType": OCI_MANIFEST,
            "digest": self.digest,
            "size": len(self.manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
        (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def make_image(text: str, docker: bool = False, **manifest_fields: Any) -> BuiltImage:
    """One gzipped tar layer holding ``hello.txt``, reproducibly (mtime 0); an OCI manifest,
    or with ``docker`` a Docker image manifest v2 schema 2 (Docker's media types)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(buf.getvalue(), mtime=0)
    diff_id = sha(buf.getvalue())
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                    "digest": sha(layer),
                    "size": len(layer),
                }
            ],
            **manifest_fields,
        }
    ).encode()
    return BuiltImage(layer, config, manifest)


def new_repo(ecr: Any, name: str, **params: Any) -> str:
    ecr.create_repository(repositoryName=name, **params)
    return name


def errors(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def push_blob(http: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """The monolithic POST-then-PUT upload [distribution-spec "Pushing a blob monolithically"]."""
    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return http.put(
        started.headers["Location"],
        params={"digest": sha(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def push_image(http: httpx.Client, repo: str, image: BuiltImage, tag: str) -> httpx.Response:
    for data in image.blobs.values():
        assert push_blob(http, repo, data).status_code == 201
    return http.put(
        f"/v2/{repo}/manifests/{tag}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )


def token_password(ecr: Any) -> str:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":")
    assert user == "AWS"
    return password
