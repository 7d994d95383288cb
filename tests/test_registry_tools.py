"""Each real client pushes the busybox test image to Debian's docker-registry and pulls it back
by tag and by digest, without auth and with Basic auth (the `registry` fixture's two params);
`docker build` of FROM scratch + ADD works offline. These prove the test infrastructure that
the ECR tests reuse against ecslocal's own registry, and that tests/images.py's images are
images every client accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import images
from tests.registry_clients import Docker, Podman, Registry, oras, registry_manifest, skopeo


@pytest.fixture(autouse=True)
def _busybox() -> None:
    images.skip_without_busybox()


def _oci_index_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def test_images_are_reproducible(tmp_path: Path) -> None:
    a, b = images.busybox_image(), images.busybox_image()
    assert a.manifest == b.manifest and a.blobs == b.blobs
    images.write_docker_archive({"bb:1": a}, tmp_path / "1.tar")
    images.write_docker_archive({"bb:1": b}, tmp_path / "2.tar")
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    runnable = images.runnable_image()
    config = json.loads(runnable.config.data)["config"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"] and config["StopSignal"] == "SIGQUIT"
    assert runnable.diff_ids == a.diff_ids and runnable.digest != a.digest


def test_skopeo_pushes_and_pulls_by_tag_and_digest(registry: Registry, tmp_path: Path) -> None:
    image = images.busybox_image()
    layout = images.write_oci_layout(image, tmp_path / "layout")
    tool = skopeo()
    tool.push(f"oci:{layout}:latest", registry, registry.ref("skopeo/bb", "1"))
    # skopeo copies an OCI layout's manifest as it is: the registry serves our exact bytes.
    digest, body = registry_manifest(registry, "skopeo/bb", "1")
    assert (digest, body) == (image.digest, image.manifest)
    assert tool.raw_manifest(registry, registry.digest_ref("skopeo/bb", image.digest)) == body
    for ref, out in (
        (registry.ref("skopeo/bb", "1"), "by-tag"),
        (registry.digest_ref("skopeo/bb", image.digest), "by-digest"),
    ):
        tool.pull(registry, ref, f"oci:{tmp_path / out}:x")
        assert _oci_index_digest(tmp_path / out) == image.digest
        layer = image.layers[0].digest.removeprefix("sha256:")
        assert (tmp_path / out / "blobs/sha256" / layer).read_bytes() == image.layers[0].data


def test_skopeo_pushes_docker_archive_and_oci_archive(registry: Registry, tmp_path: Path) -> None:
    image = images.busybox_image()
    tool = skopeo()
    archive = images.write_docker_archive({"bb:1": image}, tmp_path / "save.tar")
    tool.push(f"docker-archive:{archive}", registry, registry.ref("skopeo/saved", "1"))
    _, body = registry_manifest(registry, "skopeo/saved", "1")
    # The docker save layers are compressed on the way; the config (the image id) is ours.
    assert json.loads(body)["config"]["digest"] == image.config.digest
    oci = images.write_oci_archive(image, tmp_path / "oci.tar")
    tool.push(f"oci-archive:{oci}:latest", registry, registry.ref("skopeo/ociarchive", "1"))
    assert registry_manifest(registry, "skopeo/ociarchive", "1")[0] == image.digest


def test_oras_pushes_and_pulls_by_tag_and_digest(registry: Registry, tmp_path: Path) -> None:
    image = images.busybox_image()
    client = oras(registry)
    manifest = json.loads(image.manifest)
    digest = client.push_image(
        registry.ref("oras/bb", "1"), image.blobs, manifest, tmp_path / "push"
    )
    served_digest, served = registry_manifest(registry, "oras/bb", "1")
    assert served_digest == digest and json.loads(served) == manifest
    for i, ref in enumerate((registry.ref("oras/bb", "1"), registry.digest_ref("oras/bb", digest))):
        out = tmp_path / f"pull{i}"
        out.mkdir()
        pulled, blobs = client.pull_image(ref, out)
        assert pulled == manifest and blobs == image.blobs


def test_podman_pushes_and_pulls_by_tag_and_digest(
    registry: Registry, podman: Podman, tmp_path: Path
) -> None:
    image = images.busybox_image()
    archive = images.write_docker_archive({"localhost/bb:1": image}, tmp_path / "save.tar")
    podman("load", "--quiet", "--input", str(archive))
    if registry.username:
        podman.login(registry)
    ref = registry.ref("podman/bb", "1")
    podman("tag", "localhost/bb:1", ref)
    digest = podman.push(ref, ref)
    assert registry_manifest(registry, "podman/bb", "1")[0] == digest
    podman("rmi", "--force", "localhost/bb:1", ref)
    for pulled in (ref, registry.digest_ref("podman/bb", digest)):
        # podman's image id is the config digest's hex: the same image as built.
        assert podman.pull(pulled) == image.config.digest.removeprefix("sha256:")
        podman("rmi", "--force", pulled)


def test_docker_pushes_and_pulls_by_tag_and_digest(
    registry: Registry, dockerd: Docker, tmp_path: Path
) -> None:
    image = images.busybox_image()
    archive = images.write_docker_archive({"bb:1": image}, tmp_path / "save.tar")
    dockerd("load", "--quiet", "--input", str(archive))
    assert dockerd.image_id("bb:1") == image.config.digest
    if registry.username:
        dockerd.login(registry)
    ref = registry.ref("docker/bb", "1")
    dockerd("tag", "bb:1", ref)
    digest = dockerd.push(ref)
    served_digest, body = registry_manifest(registry, "docker/bb", "1")
    assert served_digest == digest
    assert json.loads(body)["config"]["digest"] == image.config.digest
    dockerd("rmi", "bb:1", ref)
    by_digest = registry.digest_ref("docker/bb", digest)
    for pulled in (ref, by_digest):
        dockerd("pull", "--quiet", pulled)
        assert dockerd.image_id(pulled) == image.config.digest
    assert by_digest in dockerd.repo_digests(ref)
    dockerd("rmi", "--force", image.config.digest)
    if registry.username:
        dockerd("logout", registry.host)


def test_docker_build_from_scratch_offline(
    registry: Registry, dockerd: Docker, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "rootfs.tar").write_bytes(images.busybox_rootfs())
    (context / "Dockerfile").write_text(
        "FROM scratch\nADD rootfs.tar /\nENV GREETING=built\nWORKDIR /srv\n"
        'CMD ["/bin/sh", "-c", "echo $GREETING"]\n'
    )
    ref = registry.ref("docker/built", "1")
    dockerd("build", "--quiet", "--tag", ref, str(context))
    if registry.username:
        dockerd.login(registry)
    digest = dockerd.push(ref)
    served_digest, body = registry_manifest(registry, "docker/built", "1")
    assert served_digest == digest and len(json.loads(body)["layers"]) == 1
    config = json.loads(dockerd("image", "inspect", "--format", "{{json .Config}}", ref))
    assert config["Cmd"] == ["/bin/sh", "-c", "echo $GREETING"]
    assert "GREETING=built" in config["Env"] and config["WorkingDir"] == "/srv"
    dockerd("rmi", ref)
    if registry.username:
        dockerd("logout", registry.host)
