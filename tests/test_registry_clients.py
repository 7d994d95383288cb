"""The registry with real clients (skopeo, the ``oras`` Python package: skipped with the reason
when missing), blobs streamed (peak RSS), an upload across a daemon restart, and garbage
collection on the data directory a daemon left (issue 10 item 3)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecslocal.ecr.store import ImageStore
from ecslocal.registry.blobs import BLOB_GRACE, UPLOAD_MAX_AGE, BlobStore, UploadUnknown
from ecslocal.storage.db import Database
from tests.conftest import Server
from tests.registry_helpers import (
    make_image,
    new_repo,
    push_image,
    sha,
    token_password,
)


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("registry-data"), default_cluster=False).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ecr(registry_server: Server) -> Any:
    return registry_server.client("ecr")


@pytest.fixture(scope="module")
def password(ecr: Any) -> str:
    return token_password(ecr)


@pytest.fixture
def http(registry_server: Server, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry_server.url, auth=("AWS", password), timeout=30) as c:
        yield c


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak: a buffered body shows even if freed after
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_blobs_stream_to_and_from_disk(
    registry_server: Server, http: httpx.Client, ecr: Any
) -> None:
    """96 MiB through one chunked PATCH and one GET: the daemon's peak RSS grows by far less
    than the blob (it would by all of it if a body were read whole)."""
    repo = new_repo(ecr, "big")
    assert registry_server.proc is not None
    pid = registry_server.proc.pid
    chunk = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    count = 96
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(chunk)
    before = _rss_kib(pid)
    location = http.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    r = http.patch(location, content=(chunk for _ in range(count)))
    assert r.status_code == 202 and r.headers["Range"] == f"0-{count * len(chunk) - 1}"
    r = http.put(r.headers["Location"], params={"digest": "sha256:" + digest.hexdigest()})
    assert r.status_code == 201, r.text
    pulled = hashlib.sha256()
    with http.stream("GET", f"/v2/{repo}/blobs/sha256:{digest.hexdigest()}") as r:
        for part in r.iter_bytes():
            pulled.update(part)
    assert pulled.hexdigest() == digest.hexdigest()
    grown_mib = (_rss_kib(pid) - before) / 1024
    assert grown_mib < 32, f"peak RSS grew {grown_mib:.0f} MiB for a 96 MiB blob"


# -- real clients ---------------------------------------------------------------------------


def _skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    return path


def test_skopeo_push_pull_mount_and_immutable(
    registry_server: Server, ecr: Any, password: str, tmp_path: Path
) -> None:
    skopeo = _skopeo()
    new_repo(ecr, "skopeo/src")
    new_repo(ecr, "skopeo/dst")
    new_repo(ecr, "skopeo/frozen", imageTagMutability="IMMUTABLE")
    host = f"127.0.0.1:{registry_server.port}"
    creds = f"AWS:{password}"
    image = make_image("skopeo")
    image.write_layout(tmp_path / "layout", "v1")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=120)

    push = ["copy", "--dest-tls-verify=false", "--dest-creds", creds]
    pull = ["--src-tls-verify=false", "--src-creds", creds]
    r = run(*push, f"oci:{tmp_path / 'layout'}:v1", f"docker://{host}/skopeo/src:v1")
    assert r.returncode == 0, r.stderr
    # registry to registry: skopeo mounts the blobs across repositories
    r = run("--debug", "copy", *pull, "--dest-tls-verify=false", "--dest-creds", creds,
            f"docker://{host}/skopeo/src:v1", f"docker://{host}/skopeo/dst:v1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "mount OK" in r.stderr
    r = run(
        "copy", *pull, f"docker://{host}/skopeo/dst@{image.digest}", f"oci:{tmp_path / 'out'}:x"
    )
    assert r.returncode == 0, r.stderr
    assert (
        tmp_path / "out" / "blobs" / "sha256" / sha(image.layer).split(":")[1]
    ).read_bytes() == (image.layer)
    r = run("list-tags", "--tls-verify=false", "--creds", creds, f"docker://{host}/skopeo/dst")
    assert json.loads(r.stdout)["Tags"] == ["v1"]
    # the immutable refusal as skopeo shows it
    other = make_image("other")
    other.write_layout(tmp_path / "other", "v1")
    r = run(*push, f"oci:{tmp_path / 'layout'}:v1", f"docker://{host}/skopeo/frozen:v1")
    assert r.returncode == 0, r.stderr
    r = run(*push, f"oci:{tmp_path / 'other'}:v1", f"docker://{host}/skopeo/frozen:v1")
    assert r.returncode != 0
    assert (
        "tag invalid: The image tag 'v1' already exists in the 'skopeo/frozen' repository"
        in r.stderr
    )
    # without credentials: the challenge, seen as such
    r = run("inspect", "--tls-verify=false", "--no-creds", f"docker://{host}/skopeo/src:v1")
    assert r.returncode != 0 and "unauthorized" in r.stderr.lower()


def test_oras_push_pull_artifact(
    registry_server: Server, ecr: Any, password: str, tmp_path: Path, monkeypatch: Any
) -> None:
    oras_client = pytest.importorskip("oras.client", reason="the oras package is not installed")
    new_repo(ecr, "oras/artifacts")
    host = f"127.0.0.1:{registry_server.port}"
    # ECR has no token server: oras-py's basic backend sends the Basic credential each time
    client = oras_client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
    client.login(username="AWS", password=password, hostname=host)
    monkeypatch.chdir(tmp_path)  # oras-py pushes files under the working directory only
    Path("notes.txt").write_text("an artifact\n")
    r = client.push(target=f"{host}/oras/artifacts:notes", files=["notes.txt"])
    assert r.status_code == 201
    out = tmp_path / "out"
    pulled = client.pull(target=f"{host}/oras/artifacts:notes", outdir=str(out))
    assert [Path(p).read_text() for p in pulled] == ["an artifact\n"]
    assert client.get_tags(f"{host}/oras/artifacts") == ["notes"]


# -- restart and garbage collection ---------------------------------------------------------


def test_upload_survives_restart_and_gc_collects_deleted_images(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", default_cluster=False).start()
    try:
        ecr = server.client("ecr")
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        auth = ("AWS", base64.b64decode(token).decode().split(":")[1])
        new_repo(ecr, "gc")
        kept, dropped = make_image("kept"), make_image("dropped")
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as http:
            push_image(http, "gc", kept, "kept")
            push_image(http, "gc", dropped, "dropped")
            assert http.delete(f"/v2/gc/manifests/{dropped.digest}").status_code == 202
            location = http.post("/v2/gc/blobs/uploads/").headers["Location"]
            assert http.patch(location, content=b"first half ").status_code == 202
        server.stop()
        server.start()
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as http:
            # the session and its bytes survived; the token too
            assert http.get(location).headers["Range"] == "0-10"
            data = b"first half second half"
            r = http.put(location, params={"digest": sha(data)}, content=b"second half")
            assert r.status_code == 201, r.text
            assert http.get(f"/v2/gc/blobs/{sha(data)}").content == data
    finally:
        server.stop()
    # Collection a week on (the daemon's grace periods spare fresh uploads): what only the
    # deleted image used goes, what a live image references stays.
    root = tmp_path / "data" / "registry"
    later = time.time() + 8 * 24 * 3600
    db = Database(tmp_path / "data" / "state.db")
    try:
        blobs = BlobStore(root)
        images = ImageStore(db, blobs, now=lambda: later)
        before = {p.name for p in (root / "blobs" / "sha256").rglob("*") if p.is_file()}
        assert {sha(b).split(":")[1] for b in (dropped.layer, dropped.config)} <= before
        blobs.collect(images.live_blobs(), now=later)
        after = {p.name for p in (root / "blobs" / "sha256").rglob("*") if p.is_file()}
        assert after == {sha(b).split(":")[1] for b in (kept.layer, kept.config)}
    finally:
        db.close()


def test_collect_spares_fresh_blobs_and_drops_stale_uploads(tmp_path: Path) -> None:
    """BlobStore.collect on its own: an unreferenced blob younger than the grace period stays
    (docker pushes layers before their manifest), an older one goes; an upload session untouched
    for a week goes, a fresh one stays and can still be committed."""
    store = BlobStore(tmp_path / "registry")
    old, young, live = b"old garbage", b"young garbage", b"referenced"
    for data in (old, young, live):
        session = store.start_upload("owner")
        store.append(session, data)
        store.commit(session, sha(data))
    now = time.time()
    old_path = store.path(sha(old))
    assert old_path is not None
    os.utime(old_path, (now - BLOB_GRACE - 10, now - BLOB_GRACE - 10))
    stale, fresh = store.start_upload("owner"), store.start_upload("owner")
    store.append(stale, b"abandoned")
    store.append(fresh, b"in progress")
    stale_dir = tmp_path / "registry" / "uploads" / stale
    for p in (stale_dir, stale_dir / "data", stale_dir / "owner"):
        os.utime(p, (now - UPLOAD_MAX_AGE - 10, now - UPLOAD_MAX_AGE - 10))
    live_path = store.path(sha(live))
    assert live_path is not None
    os.utime(live_path, (now - BLOB_GRACE - 10, now - BLOB_GRACE - 10))

    assert store.collect({sha(live)}, now=now) == 2
    assert store.path(sha(old)) is None
    assert store.path(sha(young)) is not None and store.path(sha(live)) is not None
    assert store.upload_size(stale) is None
    assert store.upload_size(fresh) == len(b"in progress")
    assert store.commit(fresh, sha(b"in progress")) == len(b"in progress")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """podman's runroot must be under 50 characters (pytest's tmp_path is longer)."""
    path = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_podman_push_mount_pull_and_immutable(
    registry_server: Server, ecr: Any, password: str, tmp_path: Path, short_dir: Path
) -> None:
    """podman (its own storage under tmp_path, vfs driver: nothing outside the test): login as
    AWS, push, a second repository mounted from the first, pull by tag, the immutable refusal."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    new_repo(ecr, "podman/one")
    new_repo(ecr, "podman/two")
    new_repo(ecr, "podman/frozen", imageTagMutability="IMMUTABLE")
    host = f"127.0.0.1:{registry_server.port}"
    image, other = make_image("podman"), make_image("podman other")
    image.write_layout(tmp_path / "layout", "v1")
    other.write_layout(tmp_path / "other", "v1")
    storage = [
        f"--root={tmp_path / 'root'}",
        f"--runroot={short_dir}",
        "--storage-driver=vfs",
        "--cgroup-manager=cgroupfs",
        "--events-backend=none",
    ]
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [podman, *storage, *args],
            capture_output=True,
            text=True,
            timeout=180,
            input=input,
            env=env,
        )

    r = run("login", "--tls-verify=false", "-u", "AWS", "--password-stdin", host, input=password)
    assert r.returncode == 0, r.stderr
    r = run("pull", "-q", f"oci:{tmp_path / 'layout'}:v1")
    assert r.returncode == 0, r.stderr
    local = r.stdout.strip().splitlines()[-1]
    r = run("push", "--tls-verify=false", local, f"docker://{host}/podman/one:v1")
    assert r.returncode == 0, r.stderr
    r = run(
        "--log-level=debug", "push", "--tls-verify=false", local, f"docker://{host}/podman/two:v1"
    )
    assert r.returncode == 0, r.stderr
    assert "mount OK" in r.stderr  # the layer came across repositories, not uploaded again
    r = run("rmi", "-a", "-f")
    r = run("pull", "--tls-verify=false", f"{host}/podman/two:v1")
    assert r.returncode == 0, r.stderr
    r = run("pull", "-q", f"oci:{tmp_path / 'other'}:v1")
    assert r.returncode == 0, r.stderr
    other_local = r.stdout.strip().splitlines()[-1]
    r = run("push", "--tls-verify=false", other_local, f"docker://{host}/podman/frozen:v1")
    assert r.returncode == 0, r.stderr
    r = run("push", "--tls-verify=false", local, f"docker://{host}/podman/frozen:v1")
    assert r.returncode != 0
    assert "tag invalid: The image tag 'v1' already exists in the 'podman/frozen'" in r.stderr


def _backdate(data_dir: Path, blobs: list[bytes], seconds: float) -> None:
    """Age the blobs' files and their repository links by ``seconds`` (a daemon that is down)."""
    db = Database(data_dir / "state.db")
    try:
        db.execute("UPDATE ecr_repo_blobs SET linked_at = linked_at - ?", (seconds,))
    finally:
        db.close()
    store = BlobStore(data_dir / "registry")
    for data in blobs:
        path = store.path(sha(data))
        assert path is not None
        old = path.stat().st_mtime - seconds
        os.utime(path, (old, old))


def test_blob_reported_present_stays_live_for_the_grace_period(tmp_path: Path) -> None:
    """A client may skip an upload after a 200 blob HEAD [distribution-spec "Pushing blobs":
    "If the registry responds with 200 OK, the blob already exists and the client MAY skip
    the upload"] or an AVAILABLE BatchCheckLayerAvailability (docker's ECR path): a blob so
    reported is re-linked, so a collection right after spares it and the manifest PUT that
    follows finds it (before: MANIFEST_BLOB_UNKNOWN)."""
    data_dir = tmp_path / "data"
    server = Server(data_dir, default_cluster=False).start()
    try:
        ecr = server.client("ecr")
        auth = ("AWS", token_password(ecr))
        by_head, by_check = make_image("head"), make_image("check")
        new_repo(ecr, "gc-head")
        new_repo(ecr, "gc-check")
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as http:
            for repo, image in (("gc-head", by_head), ("gc-check", by_check)):
                assert push_image(http, repo, image, "v1").status_code == 201
                assert http.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
        server.stop()
        _backdate(data_dir, [*by_head.blobs.values(), *by_check.blobs.values()], 2 * 24 * 3600)
        server.start()
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as http:
            for digest in by_head.blobs:
                assert http.head(f"/v2/gc-head/blobs/{digest}").status_code == 200
        checked = server.client("ecr").batch_check_layer_availability(
            repositoryName="gc-check", layerDigests=list(by_check.blobs)
        )
        assert [x["layerAvailability"] for x in checked["layers"]] == ["AVAILABLE"] * 2
        server.stop()
        db = Database(data_dir / "state.db")
        try:
            store = BlobStore(data_dir / "registry")
            store.collect(ImageStore(db, store, now=time.time).live_blobs())
        finally:
            db.close()
        server.start()
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as http:
            for repo, image in (("gc-head", by_head), ("gc-check", by_check)):
                r = http.put(
                    f"/v2/{repo}/manifests/v1",
                    content=image.manifest,
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                )
                assert r.status_code == 201, r.text
    finally:
        server.stop()


def test_session_locks_exist_only_for_live_sessions(tmp_path: Path) -> None:
    """BlobStore.hold_upload: no lock for an unknown session or another owner's (checked
    first), and none left once the session is committed, cancelled or collected."""
    store = BlobStore(tmp_path / "registry")

    async def scenario() -> None:
        for bogus, owner in ((str(uuid.uuid4()), "a/r/x"), ("not-an-id", "a/r/x")):
            with pytest.raises(UploadUnknown):
                async with store.hold_upload(bogus, owner):
                    pass
        mine = store.start_upload("a/r/x")
        with pytest.raises(UploadUnknown):
            async with store.hold_upload(mine, "a/r/other"):
                pass
        assert store.session_locks == 0
        async with store.hold_upload(mine, "a/r/x") as size:
            assert size == 0 and store.session_locks == 1
            store.append(mine, b"data")
            store.commit(mine, sha(b"data"))
        cancelled = store.start_upload("a/r/x")
        async with store.hold_upload(cancelled, "a/r/x"):
            store.abort(cancelled)
        stale = store.start_upload("a/r/x")
        async with store.hold_upload(stale, "a/r/x"):
            pass
        assert store.session_locks == 1
        store.collect(set(), upload_max_age=0)
        assert store.session_locks == 0

    asyncio.run(scenario())


def _gone(data_dir: Path, blobs: list[bytes], timeout: float = 60) -> bool:
    """Whether the blobs' files go within ``timeout`` (the collection the deletion asked for)."""
    store = BlobStore(data_dir / "registry")
    deadline = time.monotonic() + timeout
    while any(store.path(sha(b)) is not None for b in blobs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_api_deletes_ask_for_a_collection(tmp_path: Path) -> None:
    """BatchDeleteImage and DeleteRepository ask the registry for a collection soon (as its
    manifest DELETE does; before, only the periodic one, GC_INTERVAL later, came): the blobs
    only the deleted image used go, those of a live image stay."""
    data_dir = tmp_path / "data"
    server = Server(data_dir, default_cluster=False).start()
    try:
        ecr = server.client("ecr")
        auth = ("AWS", token_password(ecr))
        deleted, in_repo, kept = make_image("deleted"), make_image("in repo"), make_image("kept")
        for repo in ("gc-api", "gc-repo"):
            new_repo(ecr, repo)
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as http:
            for repo, image, tag in (
                ("gc-api", deleted, "d"),
                ("gc-api", kept, "k"),
                ("gc-repo", in_repo, "r"),
            ):
                assert push_image(http, repo, image, tag).status_code == 201
        server.stop()
        every = [*deleted.blobs.values(), *in_repo.blobs.values(), *kept.blobs.values()]
        _backdate(data_dir, every, 2 * 24 * 3600)
        server.start()
        ecr = server.client("ecr")
        ecr.batch_delete_image(repositoryName="gc-api", imageIds=[{"imageTag": "d"}])
        assert _gone(data_dir, list(deleted.blobs.values()))
        ecr.delete_repository(repositoryName="gc-repo", force=True)
        assert _gone(data_dir, list(in_repo.blobs.values()))
        store = BlobStore(data_dir / "registry")
        assert all(store.path(d) is not None for d in kept.blobs)
    finally:
        server.stop()
