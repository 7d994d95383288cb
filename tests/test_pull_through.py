"""The pull-through cache (issue 10 item 6; docs/ecr.md "Pull-through cache"): `ecslocal image
pull` copies another registry's image into the repository ECR's pull-through cache rules give
it (`<host>-<port>/<repo>` for a private registry, `docker-hub/library/<name>` for a Docker Hub
official image), bit-exact; RunTask naming the upstream reference then reports that digest,
while an uncached upstream reference runs the host command without any network call.
docker-registry on loopback (open, Basic, Bearer) stands in for the remote; a counting TCP
forwarder in front of it sees every connection ecslocal makes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from ecslocal.ecr.pullthrough import cache_repository
from ecslocal.images.client import MAX_MANIFEST, RegistryClient
from ecslocal.images.client import RegistryError as ImageRegistryError
from ecslocal.images.transfer import parse_reference
from tests import images
from tests.conftest import Server, container, wait_stopped
from tests.registry_clients import Registry, registry_manifest, skopeo
from tests.test_image_resolution import run


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Server]:
    images.skip_without_busybox()
    s = Server(tmp_path / "data").start()
    yield s
    s.stop()


class Forwarder:
    """A loopback TCP forwarder to ``target`` ("host:port") counting the connections made."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.connections = 0
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.accepting.join(10)
        for t in self.threads:
            t.join(10)


@contextmanager
def forwarder(target: str) -> Iterator[Forwarder]:
    f = Forwarder(target)
    try:
        yield f
    finally:
        f.close()


def pull_args(registry: Registry) -> tuple[list[str], str | None]:
    if not registry.username:
        return [], None
    return ["--username", registry.username, "--password-stdin"], f"{registry.password}\n"


def test_cache_repository_names_follow_ecr_rules() -> None:
    """ECR User Guide, pull-through-cache-working.html: `docker-hub/library/<image>` for
    official images, no `library/` for others; a private host keeps host and port."""
    names = {
        "busybox": "docker-hub/library/busybox",
        "docker.io/bitnami/redis:7": "docker-hub/bitnami/redis",
        "public.ecr.aws/nginx/nginx:1": "ecr-public/nginx/nginx",
        "quay.io/prometheus/node-exporter": "quay/prometheus/node-exporter",
        "registry.k8s.io/pause:3.9": "kubernetes/pause",
        "ghcr.io/org/app@sha256:" + "0" * 64: "github/org/app",
        "127.0.0.1:5001/busybox:1": "127.0.0.1-5001/busybox",
    }
    assert {ref: cache_repository(parse_reference(ref)) for ref in names} == names


def test_pull_caches_upstream_image_and_runtask_reports_its_digest(
    daemon: Server, registry: Registry, tmp_path: Path
) -> None:
    image = images.runnable_image()
    layout = images.write_oci_layout(image, tmp_path / "layout")
    for tag in ("1", "2"):
        skopeo().push(f"oci:{layout}:latest", registry, registry.ref("busybox", tag))
    upstream_digest, _ = registry_manifest(registry, "busybox", "1")
    with forwarder(registry.host) as remote:
        args, password = pull_args(registry)
        out = daemon.cli("image", "pull", f"{remote.host}/busybox:1", *args, input=password)
        assert out.returncode == 0, out.stderr
        assert remote.connections > 0  # it did come through the forwarder
        cached = f"127.0.0.1-{remote.port}/busybox"
        assert out.stdout.splitlines()[-1] == f"localhost:{daemon.port}/{cached}:1"
        assert f"Digest: {upstream_digest}" in out.stdout
        ecr = daemon.client("ecr")
        details = ecr.describe_images(repositoryName=cached)["imageDetails"]
        assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(upstream_digest, ["1"])]
        assert upstream_digest == image.digest  # bit-exact: the pushed manifest's own digest
        again = daemon.cli("image", "pull", f"{remote.host}/busybox:1", *args, input=password)
        assert again.returncode == 0, again.stderr
        assert f"Status: Image is up to date for {remote.host}/busybox:1" in again.stdout
        assert "Status: Downloaded newer image" in out.stdout
        rows = [
            line.split()[:3] for line in daemon.cli("image", "ls", "--digests").stdout.splitlines()
        ]
        assert [cached, "1", upstream_digest] in rows

        # RunTask naming the upstream reference: the cached image's digest, a pull recorded.
        task = wait_stopped(
            daemon.ecs(), run(daemon, container("main", "exit 0", image=f"{remote.host}/busybox:1"))
        )
        assert task["containers"][0]["imageDigest"] == upstream_digest
        assert task["containers"][0]["exitCode"] == 0
        pulled = ecr.describe_images(repositoryName=cached)["imageDetails"][0]
        assert "lastRecordedPullTime" in pulled

        # Not cached (tag 2 is upstream only): the host command runs, no digest, no connection.
        seen = remote.connections
        task = wait_stopped(
            daemon.ecs(), run(daemon, container("main", "exit 0", image=f"{remote.host}/busybox:2"))
        )
        assert task["containers"][0]["exitCode"] == 0
        assert "imageDigest" not in task["containers"][0]
        assert remote.connections == seen


def test_loaded_docker_hub_image_counts_as_cached(daemon: Server, tmp_path: Path) -> None:
    """An image pushed (from a layout) as `docker-hub/library/busybox:1` is what `busybox:1`
    pulls through."""
    image = images.runnable_image()
    layout = images.write_oci_layout(image, tmp_path / "layout")
    out = daemon.cli("image", "push", str(layout), "docker-hub/library/busybox:1")
    assert out.returncode == 0, out.stderr
    arns = [
        run(daemon, container("main", "exit 0", image=ref)) for ref in ("busybox:1", "busybox:2")
    ]
    first, second = (wait_stopped(daemon.ecs(), arn)["containers"][0] for arn in arns)
    assert first["imageDigest"] == image.digest
    assert "imageDigest" not in second and second["exitCode"] == 0


def test_wrong_password_is_one_line(daemon: Server, registry: Registry, tmp_path: Path) -> None:
    if not registry.username:
        pytest.skip("an open registry takes any password")
    out = daemon.cli(
        "image",
        "pull",
        registry.ref("busybox", "1"),
        "-u",
        registry.username,
        "--password-stdin",
        input="wrong\n",
    )
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error:") and "Traceback" not in out.stderr
    repos = daemon.client("ecr").describe_repositories()["repositories"]
    assert repos == []  # nothing was made in the cache


def test_pull_missing_fetches_into_the_store(registry: Registry, tmp_path: Path) -> None:
    """The runc seam, called directly: RemoteImageSource(pull_missing=True) with StoreFetch
    copies an uncached upstream image into ECR's store, then resolves it (same digest, pull
    recorded); with pull_missing=False the same reference gives None."""
    from ecslocal.ecr.pullfetch import StoreFetch
    from ecslocal.ecr.pullthrough import RemoteImageSource
    from ecslocal.ecr.store import ImageStore
    from ecslocal.registry.blobs import BlobStore
    from ecslocal.storage.db import Database

    images.skip_without_busybox()
    image = images.runnable_image()
    layout = images.write_oci_layout(image, tmp_path / "layout")
    skopeo().push(f"oci:{layout}:latest", registry, registry.ref("busybox", "1"))
    db = Database(tmp_path / "state.db")
    try:
        blobs = BlobStore(tmp_path / "blobs")
        store = ImageStore(db, blobs)
        creds = (registry.username, registry.password) if registry.username else None
        fetch = StoreFetch(store, blobs, lambda host: creds if host == registry.host else None)
        reference, account, region = registry.ref("busybox", "1"), "000000000000", "us-east-1"
        assert RemoteImageSource(store).pull(reference, account, region) is None
        assert store.repositories(account, region) == []
        source = RemoteImageSource(store, pull_missing=True, fetch=fetch)
        pulled = source.pull(reference, account, region)
        assert pulled is not None and pulled.digest == image.digest
        assert pulled.image_id == image.config.digest
        repo = store.repository(account, region, cache_repository(parse_reference(reference)))
        assert repo is not None
        cached = store.image(repo, tag="1")
        assert cached is not None and cached.last_pull is not None
        # Blobs bit-exact: the layer in the store is the one pushed upstream.
        layer = image.layers[0]
        path = blobs.path(layer.digest)
        assert path is not None and path.read_bytes() == layer.data
        # Cached now: a source that never fetches resolves it too.
        again = RemoteImageSource(store).pull(reference, account, region)
        assert again is not None and again.digest == image.digest
    finally:
        db.close()


def test_an_upstream_manifest_is_read_to_its_limit_only() -> None:
    """An upstream's manifest over MAX_MANIFEST is refused on its Content-Length without a
    byte read, and without one after MAX_MANIFEST + 1 bytes (before: read whole, then
    measured). The upstream is an httpx transport serving an endless body."""
    read = {"bytes": 0}

    def endless() -> Iterator[bytes]:
        while True:
            read["bytes"] += 1 << 16
            yield b" " * (1 << 16)
            if read["bytes"] > 8 * MAX_MANIFEST:  # the old client read it all: stop somewhere
                return

    def upstream(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if request.url.path.endswith("/announced"):
            headers["Content-Length"] = str(MAX_MANIFEST + 1)
        return httpx.Response(200, headers=headers, content=endless())

    with RegistryClient("http://upstream.invalid", transport=httpx.MockTransport(upstream)) as c:
        with pytest.raises(ImageRegistryError) as exc:
            c.get_manifest("library/big", "announced")
        assert exc.value.code == "SIZE_INVALID" and read["bytes"] == 0
        with pytest.raises(ImageRegistryError) as exc:
            c.get_manifest("library/big", "endless")
        assert exc.value.code == "SIZE_INVALID"
        assert MAX_MANIFEST < read["bytes"] <= MAX_MANIFEST + (1 << 16)
