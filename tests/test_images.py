"""ecslocal.images against Debian's docker-registry (open and with Basic auth): archives read
into blobs and manifests, the registry client's uploads (monolithic, chunked, mount), manifests
and indexes with Accept negotiation, pulls streamed to disk, and `ecslocal image load/push`
round trips with bit-exact digests (checked by skopeo, a second client)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecslocal.images.archive import ArchiveError, open_archive
from ecslocal.images.auth import AuthError
from ecslocal.images.client import RegistryClient, RegistryError
from ecslocal.images.media import DOCKER_LIST, OCI_INDEX, canonical
from ecslocal.images.transfer import (
    copy_image,
    parse_reference,
    pull_to_layout,
    push_archive_image,
)
from tests import images
from tests.conftest import ROOT
from tests.registry_clients import Docker, Podman, Registry, oras, registry_manifest, skopeo


@pytest.fixture(autouse=True)
def _busybox() -> None:
    images.skip_without_busybox()


def client_for(registry: Registry) -> RegistryClient:
    return RegistryClient(registry.url, registry.username, registry.password)


def ecslocal_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "ecslocal", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def registry_args(registry: Registry) -> tuple[list[str], str | None]:
    args = ["--registry", registry.url]
    if registry.username:
        return [*args, "--username", registry.username, "--password-stdin"], registry.password
    return args, None


def test_archives_of_each_format_give_the_same_blobs(tmp_path: Path) -> None:
    image = images.busybox_image()
    layout = images.write_oci_layout({"bb:1": image}, tmp_path / "layout")
    oci = images.write_oci_archive({"bb:1": image}, tmp_path / "oci.tar")
    saved = images.write_docker_archive({"bb:1": image, "bb:2": image}, tmp_path / "save.tar")
    with open(saved, "rb") as f, gzip.open(tmp_path / "save.tar.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    for path in (layout, oci):
        with open_archive(path) as archive:
            (item,) = archive.images
            assert item.names == ("bb:1",) and item.manifest.data == image.manifest
            assert {d: b.read() for d, b in archive.blobs.items()} == image.blobs
    for path in (saved, tmp_path / "save.tar.gz"):
        with open_archive(path) as archive:
            (item,) = archive.images
            assert item.names == ("bb:1", "bb:2")
            doc = item.manifest.document
            # docker save's layers are pushed as they are: their digests are the diff_ids.
            assert [layer["digest"] for layer in doc["layers"]] == list(image.diff_ids)
            assert archive.blob(doc["config"]["digest"]).read() == image.config.data
            assert archive.blob(image.diff_ids[0]).read() == image.layer_tars[0]
    (tmp_path / "junk").write_bytes(b"not an archive")
    with pytest.raises(ArchiveError), open_archive(tmp_path / "junk"):
        pass


@pytest.mark.parametrize("chunk_size", [None, 300_000], ids=["monolithic", "chunked"])
def test_client_pushes_and_pulls_bit_exact(
    registry: Registry, tmp_path: Path, chunk_size: int | None
) -> None:
    image = images.busybox_image()
    with client_for(registry) as client:
        for descriptor in [json.loads(image.manifest)["config"], *image.layers]:
            digest = descriptor["digest"] if isinstance(descriptor, dict) else descriptor.digest
            data = image.blobs[digest]
            how = client.push_blob(
                "c/bb", digest, len(data), lambda d=data: iter([d]), chunk_size=chunk_size
            )
            assert how == ("chunked" if chunk_size else "monolithic")
            assert client.push_blob("c/bb", digest, len(data), lambda: iter([])) == "exists"
        assert client.push_manifest("c/bb", "1", image.manifest, image.media_type) == image.digest
        for reference in ("1", image.digest):
            pulled = client.get_manifest("c/bb", reference)
            assert (pulled.data, pulled.media_type) == (image.manifest, image.media_type)
        layer = image.layers[0]
        assert client.blob_size("c/bb", layer.digest) == len(layer.data)
        assert client.pull_blob("c/bb", layer.digest, tmp_path / "layer") == len(layer.data)
        assert (tmp_path / "layer").read_bytes() == layer.data
        assert client.tags("c/bb") == ["1"]
        # A blob whose bytes do not match its digest is refused by the registry.
        with pytest.raises(RegistryError) as refused:
            client.push_blob("c/bb", "sha256:" + "0" * 64, 3, lambda: iter([b"abc"]))
        assert refused.value.code == "DIGEST_INVALID"


def test_client_mounts_across_repositories(registry: Registry) -> None:
    image = images.busybox_image()
    layer = image.layers[0]
    with client_for(registry) as client:
        client.push_blob("m/a", layer.digest, len(layer.data), lambda: iter([layer.data]))
        how = client.push_blob(
            "m/b", layer.digest, len(layer.data), lambda: iter([]), mount_from=["m/a"]
        )
        assert how == "mounted" and client.blob_size("m/b", layer.digest) == len(layer.data)


def test_indexes_and_docker_manifests_negotiated_by_accept(
    registry: Registry, tmp_path: Path
) -> None:
    oci, docker = images.busybox_image(), images.runnable_image(docker=True)
    for media_type in (OCI_INDEX, DOCKER_LIST):
        index = canonical(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "manifests": [
                    {**oci.descriptor(), "platform": {"architecture": "amd64", "os": "linux"}},
                    {**docker.descriptor(), "platform": {"architecture": "arm64", "os": "linux"}},
                ],
            }
        )
        layout = tmp_path / f"layout-{media_type.rsplit('.', 2)[-2]}"
        images.write_oci_layout({"bb:multi": oci}, layout)
        for image in (docker,):
            for digest, data in {**image.blobs, image.digest: image.manifest}.items():
                (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
        (layout / "blobs/sha256" / images.sha256(index)[7:]).write_bytes(index)
        (layout / "index.json").write_bytes(
            canonical(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [
                        {
                            "mediaType": media_type,
                            "digest": images.sha256(index),
                            "size": len(index),
                            "annotations": {"org.opencontainers.image.ref.name": "bb:multi"},
                        }
                    ],
                }
            )
        )
        with client_for(registry) as client, open_archive(layout) as archive:
            (item,) = archive.images
            digest = push_archive_image(archive, item.manifest, client, "idx/bb", "multi")
            assert digest == images.sha256(index)
            top = client.get_manifest("idx/bb", "multi")
            assert (top.media_type, top.data) == (media_type, index)
            child = client.get_manifest("idx/bb", docker.digest)
            assert child.media_type == docker.media_type and child.data == docker.manifest
            # Accept is what decides (distribution registry/handlers/manifests.go): a client
            # that does not accept OCI indexes gets MANIFEST_UNKNOWN; one that does not
            # accept Docker manifest lists gets the list's linux/amd64 image instead.
            if media_type == OCI_INDEX:
                with pytest.raises(RegistryError) as refused:
                    client.get_manifest("idx/bb", "multi", accept=[oci.media_type])
                assert refused.value.code == "MANIFEST_UNKNOWN"
            else:
                narrowed = client.get_manifest("idx/bb", "multi", accept=[oci.media_type])
                assert (narrowed.data, narrowed.digest) == (oci.manifest, oci.digest)
            pulled = tmp_path / f"pulled-{media_type.rsplit('.', 2)[-2]}"
            assert pull_to_layout(client, "idx/bb", "multi", pulled, "multi") == digest
        # Every child and blob is in the layout we pulled, bit-exact.
        for image in (oci, docker):
            for digest, data in {**image.blobs, image.digest: image.manifest}.items():
                assert (pulled / "blobs/sha256" / digest[7:]).read_bytes() == data
        if media_type == OCI_INDEX:  # skopeo's oci: transport reads OCI indexes only
            raw = subprocess.run(
                ["skopeo", "inspect", "--raw", f"oci:{pulled}:multi"],
                capture_output=True,
                check=True,
            ).stdout
            assert raw == index


def test_copy_between_registries_keeps_digests(registry: Registry, tmp_path: Path) -> None:
    image = images.runnable_image()
    layout = images.write_oci_layout({"bb:1": image}, tmp_path / "layout")
    with client_for(registry) as client, open_archive(layout) as archive:
        push_archive_image(archive, archive.images[0].manifest, client, "src/bb", "1")
        assert copy_image(client, "src/bb", "1", client, "dst/bb", "copied") == image.digest
        assert client.get_manifest("dst/bb", "copied").data == image.manifest


def test_cli_load_push_round_trip(registry: Registry, tmp_path: Path) -> None:
    image, runnable = images.busybox_image(), images.runnable_image()
    saved = images.write_docker_archive(
        {"cli/bb:1": image, "cli/run:2": runnable}, tmp_path / "save.tar"
    )
    args, password = registry_args(registry)
    out = ecslocal_cli("image", "load", str(saved), *args, stdin=password)
    assert out.returncode == 0, out.stderr
    loaded = [line for line in out.stdout.splitlines() if line.startswith("Loaded image: ")]
    assert len(loaded) == 2 and f"{registry.host}/cli/bb:1" in loaded[0]
    with open_archive(saved) as archive:
        expected = {item.names[0]: item.manifest.digest for item in archive.images}
    assert registry_manifest(registry, "cli/bb", "1")[0] == expected["cli/bb:1"]
    # oras (another client) pulls what we loaded: config and layer as docker save has them.
    (tmp_path / "pulled").mkdir()
    _, blobs = oras(registry).pull_image(registry.ref("cli/run", "2"), tmp_path / "pulled")
    assert blobs == {
        runnable.config.digest: runnable.config.data,
        runnable.diff_ids[0]: runnable.layer_tars[0],
    }
    # skopeo reads it as an image (and would run it: the config is the runnable one).
    raw_config = json.loads(skopeo().raw_manifest(registry, registry.ref("cli/run", "2")))
    assert raw_config["config"]["digest"] == runnable.config.digest
    # An OCI layout through `image push FILE NAME` keeps the exact manifest bytes.
    layout = images.write_oci_layout(runnable, tmp_path / "layout")
    out = ecslocal_cli(
        "image", "push", str(layout), "cli/oci:3", "--chunk-size", "500000", *args, stdin=password
    )
    assert out.returncode == 0, out.stderr
    assert registry_manifest(registry, "cli/oci", "3") == (runnable.digest, runnable.manifest)
    # `image push REGISTRY/REPO@DIGEST NAME` copies from a registry, by digest.
    source = registry.digest_ref("cli/oci", runnable.digest)
    creds = ["--src-creds", registry.creds] if registry.creds else []
    out = ecslocal_cli("image", "push", source, "cli/copied:4", *creds, *args, stdin=password)
    assert out.returncode == 0, out.stderr
    assert f"digest: {runnable.digest}" in out.stdout
    assert registry_manifest(registry, "cli/copied", "4")[0] == runnable.digest


def test_cli_load_errors_are_one_line(registry: Registry, tmp_path: Path) -> None:
    args, password = registry_args(registry)
    (tmp_path / "junk.tar").write_bytes(b"x" * 1000)
    out = ecslocal_cli("image", "load", str(tmp_path / "junk.tar"), *args, stdin=password)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "neither an OCI layout" in out.stderr or "not a tar archive" in out.stderr
    nameless = images.write_oci_layout({"latest": images.busybox_image()}, tmp_path / "l")
    out = ecslocal_cli("image", "load", str(nameless), *args, stdin=password)
    assert out.returncode == 1 and "give --tag NAME:TAG" in out.stderr
    if registry.username:
        out = ecslocal_cli("image", "load", str(nameless), "-t", "x/y:1", *args, stdin="wrong")
        assert out.returncode == 1 and "401" in out.stderr and "Traceback" not in out.stderr


def test_references_parse_as_docker_does() -> None:
    ref = parse_reference("localhost:5000/a/b:1@sha256:" + "a" * 64)
    assert (ref.host, ref.repository, ref.tag) == ("localhost:5000", "a/b", "1")
    assert parse_reference("busybox").host is None
    assert parse_reference("public.ecr.aws/docker/library/busybox:1.36").host == "public.ecr.aws"
    with pytest.raises(ValueError):
        parse_reference("Upper/case")


def test_client_pulls_anonymously_with_a_bearer_token(tmp_path: Path) -> None:
    """Docker Hub's way: an anonymous client gets a pull token from the realm (no
    credentials), and is refused a push; with credentials it pushes."""
    from tests.registry_clients import docker_registry
    from tests.token_server import token_server

    image = images.busybox_image()
    with (
        token_server("tester", "secret", anonymous_pull=True) as tokens,
        docker_registry(tmp_path / "registry", token=tokens) as registry,
    ):
        layout = images.write_oci_layout({"bb:1": image}, tmp_path / "layout")
        with client_for(registry) as client, open_archive(layout) as archive:
            push_archive_image(archive, archive.images[0].manifest, client, "anon/bb", "1")
        assert ("tester", "repository:anon/bb:pull,push") in tokens.requests
        with RegistryClient(registry.url) as anonymous:
            assert anonymous.get_manifest("anon/bb", "1").data == image.manifest
            assert anonymous.pull_blob("anon/bb", image.layers[0].digest, tmp_path / "l") > 0
            with pytest.raises(AuthError, match="refused the credentials"):
                anonymous.push_manifest("anon/bb", "2", image.manifest, image.media_type)
        assert (None, "repository:anon/bb:pull") in tokens.requests


def _layers_of(path: Path) -> tuple[tuple[str, ...], str, list[str]]:
    """(names, config digest, uncompressed layer digests) of an archive as we read it."""
    with open_archive(path) as archive:
        (item,) = archive.images
        doc = item.manifest.document
        diff_ids = []
        for layer in doc["layers"]:
            data = archive.blob(layer["digest"]).read()
            diff_ids.append(
                images.sha256(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
            )
        return item.names, doc["config"]["digest"], diff_ids


def test_reads_what_docker_and_podman_save(dockerd: Docker, podman: Podman, tmp_path: Path) -> None:
    image = images.runnable_image()
    archive = images.write_docker_archive({"saved/app:1": image}, tmp_path / "in.tar")
    dockerd("load", "--quiet", "--input", str(archive))
    dockerd("save", "--output", str(tmp_path / "docker.tar"), "saved/app:1")
    podman("load", "--quiet", "--input", str(archive))
    for fmt, out in (
        ("docker-archive", "podman.tar"),
        ("oci-archive", "podman-oci.tar"),
        ("oci-dir", "podman-oci-dir"),
    ):
        podman(
            "save",
            "--quiet",
            "--format",
            fmt,
            "--output",
            str(tmp_path / out),
            "localhost/saved/app:1" if fmt == "docker-archive" else "saved/app:1",
        )
    expected = (image.config.digest, list(image.diff_ids))
    names, *rest = _layers_of(tmp_path / "docker.tar")
    assert names == ("saved/app:1",) and tuple(rest) == expected
    for out in ("podman.tar", "podman-oci.tar", "podman-oci-dir"):
        # podman rewrites the config of an OCI save (its own JSON); the layers stay ours.
        names, config, diff_ids = _layers_of(tmp_path / out)
        assert diff_ids == list(image.diff_ids), out
        if out == "podman.tar":
            assert config == image.config.digest
    dockerd("rmi", "--force", image.config.digest)


def test_docker_25_layout_names_come_from_repo_tags(tmp_path: Path) -> None:
    """docker save since 25 writes an OCI layout plus the classic manifest.json; the names
    are manifest.json's RepoTags, not the containerd annotation."""
    image = images.busybox_image()
    layout = images.write_oci_layout({"docker.io/library/web:1": image}, tmp_path / "l")
    (layout / "manifest.json").write_text(
        json.dumps(
            [
                {
                    "Config": f"blobs/sha256/{image.config.digest[7:]}",
                    "RepoTags": ["web:1"],
                    "Layers": [f"blobs/sha256/{image.layers[0].digest[7:]}"],
                }
            ]
        )
    )
    with open_archive(layout) as archive:
        assert archive.images[0].names == ("web:1",)
        assert archive.images[0].manifest.data == image.manifest


def test_cli_load_streams_a_large_layer(tmp_path: Path) -> None:
    """A 120 MB layer goes from the archive to the registry without being held in memory: the
    CLI's peak RSS stays far below the layer's size (it would exceed it if buffered)."""
    from tests.registry_clients import docker_registry

    layer = images.tar_bytes({"big.bin": os.urandom(120_000_000)})
    image = images.build_image(layer_tars=[layer])
    saved = images.write_docker_archive({"big/layer:1": image}, tmp_path / "big.tar")
    del layer, image
    with docker_registry(tmp_path / "registry") as registry:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        cli = [
            sys.executable,
            "-m",
            "ecslocal",
            "image",
            "load",
            str(saved),
            "--registry",
            registry.url,
        ]
        process = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak = 0
        while process.poll() is None:
            with contextlib.suppress(OSError), open(f"/proc/{process.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):  # the kernel's own high-water mark
                        peak = max(peak, int(line.split()[1]) * 1024)
            time.sleep(0.05)
        stdout, stderr = process.communicate()
        assert process.returncode == 0, stderr
        assert peak > 0 and peak < 100_000_000, f"CLI peak RSS {peak / 1e6:.0f} MB"
        with open_archive(saved) as archive:
            digest = archive.images[0].manifest.digest
        assert registry_manifest(registry, "big/layer", "1")[0] == digest
