"""Signed DescribeTasks throughput: ecslocal vs moto's server, same client, same run.

One client process keeps 16 HTTP/1.1 keep-alive connections busy with a SigV4-signed
``DescribeTasks`` (one running task) for ``--seconds`` against each server in turn, and reports
requests/s, p50 and p99 latency and the ratio. The request is signed once with botocore and
replayed (a SigV4 signature stays valid for 15 minutes; ecslocal verifies it on every request,
moto does not verify signatures). Also: ``ecslocal serve`` cold start to its ready line and the
daemon's resident memory when idle and after the load.

Targets (issue 3): >= 10x moto's req/s, p99 <= 10 ms; cold start <= 0.5 s; idle RSS <= 60 MB.

    python3 bench/api_throughput.py [--seconds 10] [--connections 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import READY, BenchServer, percentile  # noqa: E402

TARGET = "AmazonEC2ContainerServiceV20141113.DescribeTasks"


def signed_request(url: str, task_arn: str) -> bytes:
    body = json.dumps({"cluster": "default", "tasks": [task_arn]}).encode()
    headers = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
    request = AWSRequest("POST", url + "/", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(request)
    host = urlsplit(url).netloc
    lines = ["POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(
    host: str, port: int, payload: bytes, until: float, latencies: list[float], errors: list[int]
) -> None:
    """Send ``payload`` back to back on one keep-alive connection; when the server answers
    ``Connection: close`` (moto's werkzeug server does, every time), reconnect, and count the
    reconnect in the next request's latency as any client would pay it."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            if writer.is_closing():
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n"):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line[15:])
                elif lower.startswith(b"connection:") and b"close" in lower:
                    close = True
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
            if close:
                writer.close()
    finally:
        writer.close()


async def _load(url: str, payload: bytes, seconds: float, connections: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    # warm-up (first requests load models, fill caches)
    warm: list[float] = []
    await asyncio.gather(
        *(
            _connection(host, port, payload, time.perf_counter() + 1.0, warm, [])
            for _ in range(connections)
        )
    )
    latencies: list[float] = []
    errors: list[int] = []
    began = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(host, port, payload, began + seconds, latencies, errors)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = shutil.which("moto_server")
    cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def one_task(url: str, needs_instance: bool) -> str:
    """Register a task definition and run one task (moto places EC2-launch tasks only on a
    registered container instance, so one is registered there first)."""
    kw: dict[str, Any] = dict(
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    ecs = boto3.client("ecs", **kw)
    ecs.create_cluster(clusterName="default")
    ecs.register_task_definition(
        family="bench-describe",
        containerDefinitions=[
            {
                "name": "app",
                "image": "busybox",
                "essential": True,
                "memory": 64,
                "command": ["sleep", "600"],
            }
        ],
    )
    if needs_instance:
        ec2 = boto3.client("ec2", **kw)
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        document = json.dumps({"instanceId": instance["Instances"][0]["InstanceId"]})
        ecs.register_container_instance(cluster="default", instanceIdentityDocument=document)
    task = ecs.run_task(cluster="default", taskDefinition="bench-describe")["tasks"][0]
    return str(task["taskArn"])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cold_start(runs: int) -> tuple[list[float], list[float]]:
    times, rss = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as data:
            began = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "ecslocal", "serve", "--port", "0"],
                env={**os.environ, "ECSLOCAL_DATA_DIR": data},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if READY.search(line):
                    times.append(time.perf_counter() - began)
                    break
            time.sleep(2.0)
            rss.append(rss_mb(proc.pid))
            proc.terminate()
            proc.wait(timeout=30)
    return times, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    starts, idle = cold_start(args.cold_starts)
    print(
        f"cold start to ready: median {percentile(starts, 50) * 1000:.0f} ms,"
        f" max {max(starts) * 1000:.0f} ms ({len(starts)} runs)"
    )
    print(f"idle RSS 2 s after ready: median {percentile(idle, 50):.1f} MB")

    rounds: dict[str, list[dict[str, Any]]] = {"ecslocal": [], "moto": []}
    moto, moto_url = start_moto()
    try:
        with BenchServer() as server:
            urls = {"ecslocal": server.url, "moto": moto_url}
            payloads = {
                name: signed_request(url, one_task(url, needs_instance=name == "moto"))
                for name, url in urls.items()
            }
            # Alternate the two servers, round after round, so a noisy neighbour on the
            # machine hits both alike; report every round and the medians.
            for i in range(args.rounds):
                for name, url in urls.items():
                    r = asyncio.run(_load(url, payloads[name], args.seconds, args.connections))
                    rounds[name].append(r)
                    print(f"round {i + 1} {name:9s} {r['req_per_s']:8.0f} req/s"
                          f"  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
                          f"  ({r['requests']} requests, {r['errors']} non-200)")
            print(f"ecslocal RSS after load: {rss_mb(server.proc.pid):.1f} MB")
            ecs = server.ecs()
            ecs.stop_task(cluster="default", task=ecs.list_tasks()["taskArns"][0])
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    medians = {
        name: {k: percentile([r[k] for r in rs], 50) for k in ("req_per_s", "p50_ms", "p99_ms")}
        for name, rs in rounds.items()
    }
    for name, m in medians.items():
        print(f"median   {name:9s} {m['req_per_s']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms"
              f"  p99 {m['p99_ms']:6.2f} ms")
    ratio = medians["ecslocal"]["req_per_s"] / medians["moto"]["req_per_s"]
    print(f"ratio ecslocal/moto (medians): {ratio:.1f}x")


if __name__ == "__main__":
    main()
