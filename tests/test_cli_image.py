"""`ecslocal image load / push / ls / rm` against the daemon's own ECR API and registry, and a
docker-registry on loopback standing in for a remote one. Skipped until the ECR API and the
registry are on this branch (they land from the ecr branch; issue 10 items 1-4)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecslocal.images.archive import open_archive
from ecslocal.images.client import RegistryClient
from tests import images
from tests.conftest import Server
from tests.registry_clients import Docker, Registry, skopeo

pytest.importorskip("ecslocal.ecr", reason="the ECR API lands from the ecr branch")
pytest.importorskip("ecslocal.registry", reason="the registry lands from the ecr branch")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Server]:
    images.skip_without_busybox()
    s = Server(tmp_path / "data").start()
    yield s
    s.stop()


def ecr_registry(server: Server) -> RegistryClient:
    """The daemon's registry with an ECR token, as `docker login` would use it."""
    ecr = server.client("ecr")
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryClient(data["proxyEndpoint"], user, password)


def test_load_ls_rm_round_trip(daemon: Server, tmp_path: Path) -> None:
    image, runnable = images.busybox_image(), images.runnable_image()
    saved = images.write_docker_archive({"web:1": image, "web:2": runnable}, tmp_path / "s.tar")
    out = daemon.cli("image", "load", str(saved))
    assert out.returncode == 0, out.stderr
    assert f"Loaded image: localhost:{daemon.port}/web:1" in out.stdout
    # The bytes are the archive's: the registry serves the same config and layer digests.
    with ecr_registry(daemon) as client:
        manifest = json.loads(client.get_manifest("web", "2").data)
        assert manifest["config"]["digest"] == runnable.config.digest
        assert [layer["digest"] for layer in manifest["layers"]] == list(runnable.diff_ids)
        client.pull_blob("web", runnable.diff_ids[0], tmp_path / "layer")
        assert (tmp_path / "layer").read_bytes() == runnable.layer_tars[0]
    described = daemon.client("ecr").describe_images(repositoryName="web")["imageDetails"]
    assert sorted(t for d in described for t in d["imageTags"]) == ["1", "2"]
    listing = daemon.cli("image", "ls").stdout.splitlines()
    assert listing[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert [line.split()[:2] for line in listing[1:]] == [["web", "1"], ["web", "2"]]
    # A moved tag leaves the old image untagged, shown as "-" (issue 10 item 2).
    layout = images.write_oci_layout(runnable, tmp_path / "layout")
    assert daemon.cli("image", "push", str(layout), "web:1").returncode == 0
    rows = [line.split()[:3] for line in daemon.cli("image", "ls", "--digests").stdout.splitlines()]
    with open_archive(saved) as archive:
        old_digest = archive.images[0].manifest.digest  # web:1 as loaded from the archive
    assert ["web", "-", old_digest] in rows and ["web", "1", runnable.digest] in rows
    out = daemon.cli("image", "rm", "web:2", "web:nope")
    assert out.returncode == 1 and "Untagged: web:2" in out.stdout
    assert "ImageNotFound" in out.stderr and "Traceback" not in out.stderr


def test_push_from_another_registry_and_pull_back(
    daemon: Server, registry: Registry, tmp_path: Path
) -> None:
    image = images.runnable_image()
    layout = images.write_oci_layout(image, tmp_path / "layout")
    skopeo().push(f"oci:{layout}:latest", registry, registry.ref("remote/app", "1"))
    creds = ["--src-creds", registry.creds] if registry.creds else []
    out = daemon.cli("image", "push", registry.ref("remote/app", "1"), "app:1", *creds)
    assert out.returncode == 0, out.stderr
    assert f"digest: {image.digest}" in out.stdout
    # skopeo pulls it from ecslocal with the ECR token: the exact manifest bytes.
    token = daemon.client("ecr").get_authorization_token()["authorizationData"][0]
    login = base64.b64decode(token["authorizationToken"]).decode()
    raw = skopeo()
    pulled = tmp_path / "pulled"
    raw.copy(f"docker://localhost:{daemon.port}/app:1", f"oci:{pulled}:x", login)
    index = json.loads((pulled / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest


def test_docker_login_build_push_pull_and_immutable(
    daemon: Server, dockerd: Docker, tmp_path: Path
) -> None:
    """`aws ecr get-login-password | docker login --username AWS --password-stdin`, then a
    `docker build` (FROM scratch + ADD, offline) pushed to ecslocal, pulled back by digest; an
    IMMUTABLE repository refuses the second push of a tag, as docker shows it."""
    ecr = daemon.client("ecr")
    ecr.create_repository(repositoryName="built")
    ecr.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    token = ecr.get_authorization_token()["authorizationData"][0]
    password = base64.b64decode(token["authorizationToken"]).decode().partition(":")[2]
    host = token["proxyEndpoint"].split("://", 1)[1]
    dockerd("login", "--username", "AWS", "--password-stdin", host, input=password)
    context = tmp_path / "context"
    context.mkdir()
    (context / "rootfs.tar").write_bytes(images.busybox_rootfs())
    (context / "Dockerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/sh"]\n')
    ref = f"{host}/built:1"
    dockerd("build", "--quiet", "--tag", ref, str(context))
    digest = dockerd.push(ref)
    described = ecr.describe_images(repositoryName="built")["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in described] == [(digest, ["1"])]
    image_id = dockerd.image_id(ref)
    dockerd("rmi", "--force", image_id)
    dockerd("pull", "--quiet", f"{host}/built@{digest}")
    assert dockerd.image_id(f"{host}/built@{digest}") == image_id
    frozen = f"{host}/frozen:1"
    dockerd("tag", image_id, frozen)
    dockerd.push(frozen)
    (context / "Dockerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/ls"]\n')
    dockerd("build", "--quiet", "--tag", frozen, str(context))
    with pytest.raises(AssertionError, match="already exists"):
        dockerd.push(frozen)
    dockerd("rmi", "--force", image_id, dockerd.image_id(frozen))
    dockerd("logout", host)
