"""Registry throughput (issue 10 item 9; not a timed test): skopeo pushes and pulls a ~200 MB
image of random layers to Debian's docker-registry (the reference distribution
implementation, started here) and, with ``--ecslocal``, to ecslocal's registry, interleaved
round by round; MB/s of each, the ratio, and each server's RSS during the transfers.

    python3 bench/registry.py [--size-mb 200] [--layers 4] [--rounds 3]
                              [--ecslocal [URL]]   # URL: a running daemon; bare: start one

Each round makes fresh random layers (gzip level 0: skopeo sends them as they are, so the
numbers are the registry's and the loopback's, not a compressor's; and no blob is already
known to either registry or to skopeo's blob-info cache, which would turn a push into a mount).
RSS is sampled from /proc/<pid>/status every 20 ms while a transfer runs: a registry that
streams stays flat whatever the blob size; one that buffers grows by a layer.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.registry_clients import start_docker_registry  # noqa: E402

from _server import BenchServer  # noqa: E402

MB = 1_000_000
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


class _Hashing:
    """A write-only file that hashes (and counts) what passes through."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.hash, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def random_image(layout: Path, size: int, layers: int) -> int:
    """An OCI layout of ``layers`` layers of random bytes, ``size`` bytes in all, written
    streaming (never a layer in memory); returns the bytes of blobs written."""
    (layout / "blobs/sha256").mkdir(parents=True)
    descriptors, diff_ids, total = [], [], 0
    for i in range(layers):
        tmp = layout / f"layer{i}.tmp"
        with open(tmp, "wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=0, mtime=0) as gz:
                uncompressed = _Hashing(gz)  # type: ignore[arg-type]
                with tarfile.open(fileobj=uncompressed, mode="w|") as tar:  # type: ignore[call-overload]
                    info = tarfile.TarInfo(f"data{i}.bin")
                    info.size = size // layers
                    reader, writer = os.pipe()
                    feeder = threading.Thread(target=_feed, args=(writer, info.size))
                    feeder.start()
                    with os.fdopen(reader, "rb") as source:
                        tar.addfile(info, source)
                    feeder.join()
        digest = compressed.hash.hexdigest()
        tmp.rename(layout / "blobs/sha256" / digest)
        descriptors.append(
            {"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{digest}", "size": compressed.size}
        )
        diff_ids.append(f"sha256:{uncompressed.hash.hexdigest()}")
        total += compressed.size
    config = _blob(
        layout,
        _canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ),
    )
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": descriptors,
        }
    )
    top = _blob(layout, manifest)
    (layout / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_bytes(
        _canonical(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        **top,
                        "annotations": {"org.opencontainers.image.ref.name": "bench"},
                    }
                ],
            }
        )
    )
    return total + config["size"] + top["size"]


def _feed(fd: int, size: int) -> None:
    with os.fdopen(fd, "wb") as out:
        while size > 0:
            n = min(size, 1 << 20)
            out.write(os.urandom(n))
            size -= n


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class RssSampler:
    pid: int
    peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self.start = rss_kib(self.pid)
        self.peak = self.start
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class Target:
    name: str
    host: str
    creds: str | None
    pid: int
    prepare: Any = None  # callable(repository) -> None: create it (ECR needs a repository)
    push: list[float] = field(default_factory=list)
    pull: list[float] = field(default_factory=list)
    rss: list[tuple[int, int]] = field(default_factory=list)  # (before, peak) KiB


def skopeo(*args: str, creds: str | None = None, direction: str = "dest") -> None:
    cmd = [
        "skopeo",
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ]
    if creds:
        cmd += [f"--{direction}-creds", creds]
    subprocess.run([*cmd, *args], check=True, capture_output=True)


def transfer(target: Target, layout: Path, scratch: Path, round_no: int, size: int) -> None:
    repository = f"bench/r{round_no}"
    if target.prepare:
        target.prepare(repository)
    ref = f"docker://{target.host}/{repository}:bench"
    with RssSampler(target.pid) as push_rss:
        t = time.perf_counter()
        skopeo(f"oci:{layout}:bench", ref, creds=target.creds, direction="dest")
        target.push.append(size / MB / (time.perf_counter() - t))
    pulled = scratch / f"pull-{target.name}-{round_no}"
    with RssSampler(target.pid) as pull_rss:
        t = time.perf_counter()
        skopeo(ref, f"oci:{pulled}:bench", creds=target.creds, direction="src")
        target.pull.append(size / MB / (time.perf_counter() - t))
    shutil.rmtree(pulled)
    target.rss.append((push_rss.start, max(push_rss.peak, pull_rss.peak)))


def ecslocal_target(url: str, pid: int) -> Target | None:
    """ecslocal's registry, if this daemon serves one: the ECR token for Basic auth at
    proxyEndpoint, repositories made with CreateRepository."""
    try:
        urllib.request.urlopen(f"{url}/v2/", timeout=5)
    except urllib.error.HTTPError as error:
        if error.code != 401:
            return None
    except OSError:
        return None
    import boto3

    ecr = boto3.client(
        "ecr",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    try:
        data = ecr.get_authorization_token()["authorizationData"][0]
    except Exception as exc:  # no ECR API on this build
        print(f"ecslocal at {url}: no ECR API ({exc})")
        return None
    creds = b64decode(data["authorizationToken"]).decode()

    def prepare(repository: str) -> None:
        try:
            ecr.create_repository(repositoryName=repository)
        except ecr.exceptions.RepositoryAlreadyExistsException:
            pass

    host = data["proxyEndpoint"].split("://", 1)[1]
    return Target("ecslocal", host, creds, pid, prepare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ecslocal", nargs="?", const="start", default=None, metavar="URL")
    args = parser.parse_args()
    if shutil.which("skopeo") is None or shutil.which("docker-registry") is None:
        sys.exit("needs skopeo and docker-registry (Debian packages skopeo, docker-registry)")
    scratch = Path(tempfile.mkdtemp(prefix="ecslocal-bench-registry-"))
    reference = start_docker_registry(scratch / "docker-registry")
    server = None
    try:
        assert reference.process is not None
        targets = [Target("docker-registry", reference.host, None, reference.process.pid)]
        if args.ecslocal == "start":
            server = BenchServer().__enter__()
            args.ecslocal = server.url
        if args.ecslocal:
            pid = server.proc.pid if server else _listener_pid(args.ecslocal)
            found = ecslocal_target(args.ecslocal, pid) if pid else None
            if found is None:
                print(
                    f"ecslocal at {args.ecslocal} serves no registry (/v2/): measuring"
                    " docker-registry alone"
                )
            else:
                targets.append(found)
        else:
            print("no --ecslocal: measuring docker-registry alone")
        for round_no in range(args.rounds):
            layout = scratch / f"image-{round_no}"
            size = random_image(layout, args.size_mb * MB, args.layers)
            order = targets if round_no % 2 == 0 else targets[::-1]
            for target in order:
                transfer(target, layout, scratch, round_no, size)
            shutil.rmtree(layout)
        report(targets, size)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
        reference.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _listener_pid(url: str) -> int | None:
    """The pid listening on URL's port (to sample a daemon this bench did not start)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    out = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True)
    marker = "pid="
    if marker in out.stdout:
        return int(out.stdout.split(marker, 1)[1].split(",", 1)[0])
    return None


def report(targets: list[Target], size: int) -> None:
    print(f"\nimage {size / MB:.0f} MB, {len(targets[0].push)} rounds, interleaved; median MB/s")
    print(f"{'registry':<16}{'push MB/s':>10}{'pull MB/s':>10}{'RSS before':>12}{'RSS peak':>10}")
    for t in targets:
        before = max(r[0] for r in t.rss) // 1024
        peak = max(r[1] for r in t.rss) // 1024
        print(
            f"{t.name:<16}{statistics.median(t.push):>10.1f}{statistics.median(t.pull):>10.1f}"
            f"{before:>10} MiB{peak:>6} MiB"
        )
    if len(targets) == 2:
        ref, local = targets
        print(
            f"ratio ecslocal/docker-registry: push "
            f"{statistics.median(local.push) / statistics.median(ref.push):.2f}x, pull "
            f"{statistics.median(local.pull) / statistics.median(ref.pull):.2f}x"
        )


if __name__ == "__main__":
    main()
