"""ecslocal beside its peers: moto_server and MiniStack, the same API operations, the same client.

The bench starts every target itself, in its own process tree, on free loopback ports, and stops
them at the end: ``ecslocal serve``, ``moto_server``, ``ministack`` (``pip install
'moto[server]' ministack``; the ``bench`` extra) and a trivial aiohttp handler (the ceiling of
what an aiohttp server answers to this client: it reads the request and returns a constant).

One client process keeps ``--connections`` (16) HTTP/1.1 keep-alive connections busy for
``--seconds`` per operation and target. Every request is signed afresh (SigV4, with a new
``amz-sdk-invocation-id`` as the SDKs send: no two signatures alike); the signer is checked
against botocore's once at start. Targets and operations are interleaved, round after round,
so a noisy neighbour hits all alike; the figures are the medians of the rounds.

Operations: RunTask, DescribeTasks of 1 and of 100 tasks, ListTasks of a 100-task page, ListTasks
(a 100-task page of stopped tasks) with 10,000 stopped tasks stored, GetLogEvents of 100 events,
RegisterTaskDefinition, DescribeTaskDefinition, ListClusters. RunTask runs a task whose container
has no command, so no target forks a process (moto and MiniStack run nothing); ecslocal still
takes such a task through its life (PROVISIONING, PENDING, STOPPED with its start failure).
``--run-command true`` runs a real process per task instead.

Targets (issue 9): every operation >= 10x moto and >= 2x MiniStack; DescribeTasks(1) >= 60 % of
the trivial handler; >= 1,000 req/s for the 100-task page with 10,000 stopped tasks; ``serve``
cold start <= 0.5 s median (exec to the "ready on" line).

    python3 bench/peers.py [--seconds 3] [--rounds 3] [--connections 16] [--ops A,B]
                           [--targets ecslocal,moto,ministack] [--cold-starts 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import READY, BenchServer, percentile  # noqa: E402
from loadgen import load  # noqa: E402

REGION = "us-east-1"
KEY = ("test", "test")
ECS = "AmazonEC2ContainerServiceV20141113"
LOGS = "Logs_20140328"
JSON_11 = "application/x-amz-json-1.1"
HISTORY = 10_000
_IDS = random.Random()


# -- signing ------------------------------------------------------------------------------------
class Signer:
    """SigV4 for ``POST /`` JSON requests: what botocore's SigV4Auth computes, without its
    per-request object churn (the client must not be the bottleneck of the faster targets)."""

    def __init__(self, host: str, key: tuple[str, str] = KEY, region: str = REGION) -> None:
        self.host, self.key, self.region = host, key, region
        self._keys: dict[tuple[str, str], bytes] = {}

    def _signing_key(self, day: str, service: str) -> bytes:
        key = self._keys.get((day, service))
        if key is None:
            k = hmac.new(f"AWS4{self.key[1]}".encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            key = self._keys[(day, service)] = k
        return key

    def headers(
        self, service: str, target: str, body: bytes, amz_date: str, invocation: str
    ) -> dict[str, str]:
        day = amz_date[:8]
        signed = {
            "amz-sdk-invocation-id": invocation,
            "content-type": JSON_11,
            "host": self.host,
            "x-amz-date": amz_date,
            "x-amz-target": target,
        }
        names = ";".join(signed)
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                *(f"{k}:{v}" for k, v in signed.items()),
                "",
                names,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/{service}/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(
            self._signing_key(day, service), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        return {
            "Amz-Sdk-Invocation-Id": invocation,
            "Content-Type": JSON_11,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": target,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self.key[0]}/{scope},"
            f" SignedHeaders={names}, Signature={signature}",
        }

    def request(self, service: str, target: str, body: bytes) -> bytes:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        invocation = str(uuid.UUID(int=_IDS.getrandbits(128), version=4))
        headers = self.headers(service, target, body, amz_date, invocation)
        lines = ["POST / HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def check_signer() -> None:
    """The bench's signature equals botocore's for the same request."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = b'{"cluster": "default"}'
    headers = {
        "Amz-Sdk-Invocation-Id": "id-1",
        "Content-Type": JSON_11,
        "X-Amz-Target": f"{ECS}.ListTasks",
    }
    request = AWSRequest("POST", "http://127.0.0.1:1/", data=body, headers=headers)
    SigV4Auth(Credentials(*KEY), "ecs", REGION).add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    mine = Signer("127.0.0.1:1").headers("ecs", f"{ECS}.ListTasks", body, amz_date, "id-1")
    assert mine["Authorization"] == request.headers["Authorization"], "bench signer != botocore"


# -- targets --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


@dataclass
class Target:
    name: str
    url: str
    proc: subprocess.Popen[Any] | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    #: Per-target facts the operations need (task ARNs, ...).
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=KEY[0],
            aws_secret_access_key=KEY[1],
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp is not None:
            self.tmp.cleanup()


def start_moto() -> Target:
    port = free_port()
    exe = shutil.which("moto_server")
    cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc, "moto_server")
    return Target("moto", f"http://127.0.0.1:{port}", proc)


def start_ministack() -> Target:
    """MiniStack in the foreground (``ministack``: hypercorn on GATEWAY_PORT), bound to
    loopback, its MQTT listener off, its pid file in a directory of our own."""
    port = free_port()
    tmp = tempfile.TemporaryDirectory()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "IOT_MTLS_ENABLED": "0",
        "LOG_LEVEL": "WARNING",
        "TMPDIR": tmp.name,
    }
    exe = shutil.which("ministack")
    cmd = [exe] if exe else [sys.executable, "-m", "ministack"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "ministack")
    return Target("ministack", f"http://127.0.0.1:{port}", proc, tmp)


def start_ecslocal(name: str = "ecslocal", src: str | None = None) -> Target:
    """``ecslocal serve`` (of the checkout at ``src``, e.g. main's, for a before/after)."""
    server = BenchServer(env={"PYTHONPATH": src} if src else None).__enter__()
    target = Target(name, server.url, server.proc)
    target.tmp = server.tmp
    return target


TRIVIAL = b'{"tasks": [], "failures": []}'


def trivial_server() -> None:
    """``--trivial-server``: one aiohttp handler that reads the request and answers a constant;
    prints its port."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=TRIVIAL, content_type=JSON_11)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def start_trivial() -> Target:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--trivial-server"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return Target("trivial", f"http://127.0.0.1:{port}", proc)


# -- state each target is measured on ------------------------------------------------------------
CLUSTERS = ("bench", "bench100", "benchhist", "benchrun")


def _container(command: list[str] | None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": "busybox", "memory": 6, "essential": True}
    if command:
        c["command"] = command
    return c


def prepare(target: Target, run_command: list[str] | None, history_size: int) -> None:
    """Clusters, task definitions, 1 + 100 running tasks, 10,000 stopped tasks, a stream of 100
    log events (boto3; not measured)."""
    ecs, logs = target.client("ecs"), target.client("logs")
    for cluster in CLUSTERS:
        ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family="bench-sleep", containerDefinitions=[_container(["sleep", "3600"])]
    )
    ecs.register_task_definition(family="bench-nocmd", containerDefinitions=[_container(None)])
    ecs.register_task_definition(family="bench-run", containerDefinitions=[_container(run_command)])
    if target.name == "moto":
        # moto places EC2-launch tasks on registered container instances only.
        ec2 = target.client("ec2")
        for cluster in CLUSTERS:
            instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
            document = json.dumps({"instanceId": instance["Instances"][0]["InstanceId"]})
            ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=document)
    one = ecs.run_task(cluster="bench", taskDefinition="bench-sleep")["tasks"][0]["taskArn"]
    hundred = [
        t["taskArn"]
        for _ in range(10)
        for t in ecs.run_task(cluster="bench100", taskDefinition="bench-sleep", count=10)["tasks"]
    ]
    history = [
        t["taskArn"]
        for _ in range(history_size // 10)
        for t in ecs.run_task(cluster="benchhist", taskDefinition="bench-nocmd", count=10)["tasks"]
    ]
    if target.name in ("ecslocal", "before"):
        # Their containers cannot start: each task stops on its own.
        deadline = time.monotonic() + 300
        while ecs.list_tasks(cluster="benchhist")["taskArns"]:
            assert time.monotonic() < deadline, "ecslocal's history tasks did not stop"
            time.sleep(0.5)
    else:
        with ThreadPoolExecutor(8) as pool:
            clients = [target.client("ecs") for _ in range(8)]
            list(
                pool.map(
                    lambda i: clients[i % 8].stop_task(cluster="benchhist", task=history[i]),
                    range(len(history)),
                )
            )
    stopped = ecs.list_tasks(cluster="benchhist", desiredStatus="STOPPED", maxResults=100)
    # moto ignores maxResults (it answers every ARN): noted in the report.
    assert len(stopped["taskArns"]) >= 100, (target.name, len(stopped["taskArns"]))
    target.facts["page"] = len(stopped["taskArns"])
    logs.create_log_group(logGroupName="/bench/logs")
    logs.create_log_stream(logGroupName="/bench/logs", logStreamName="s")
    now = int(time.time() * 1000) - 10_000
    logs.put_log_events(
        logGroupName="/bench/logs",
        logStreamName="s",
        logEvents=[{"timestamp": now + i, "message": f"line {i} " + "x" * 60} for i in range(100)],
    )
    target.facts.update(one=one, hundred=hundred)


# -- operations -----------------------------------------------------------------------------------
def _ecs(op: str, params: dict[str, Any]) -> tuple[str, str, bytes]:
    return "ecs", f"{ECS}.{op}", json.dumps(params).encode()


TASK_DEFINITION = {
    "family": "bench-register",
    "containerDefinitions": [
        {
            "name": "app",
            "image": "public.ecr.aws/docker/library/busybox:latest",
            "memory": 64,
            "command": ["sh", "-c", "echo hello"],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        }
    ],
}

OPERATIONS: dict[str, Callable[[Target], tuple[str, str, bytes]]] = {
    "RunTask": lambda t: _ecs("RunTask", {"cluster": "benchrun", "taskDefinition": "bench-run"}),
    "DescribeTasks(1)": lambda t: _ecs(
        "DescribeTasks", {"cluster": "bench", "tasks": [t.facts["one"]]}
    ),
    "DescribeTasks(100)": lambda t: _ecs(
        "DescribeTasks", {"cluster": "bench100", "tasks": t.facts["hundred"]}
    ),
    "ListTasks(100)": lambda t: _ecs("ListTasks", {"cluster": "bench100", "maxResults": 100}),
    "ListTasks(10k stopped)": lambda t: _ecs(
        "ListTasks", {"cluster": "benchhist", "desiredStatus": "STOPPED", "maxResults": 100}
    ),
    "GetLogEvents(100)": lambda t: (
        "logs",
        f"{LOGS}.GetLogEvents",
        json.dumps(
            {"logGroupName": "/bench/logs", "logStreamName": "s", "startFromHead": True}
        ).encode(),
    ),
    "RegisterTaskDefinition": lambda t: _ecs("RegisterTaskDefinition", TASK_DEFINITION),
    "DescribeTaskDefinition": lambda t: _ecs(
        "DescribeTaskDefinition", {"taskDefinition": "bench-sleep:1"}
    ),
    "ListClusters": lambda t: _ecs("ListClusters", {}),
}


def check_answers(target: Target) -> None:
    """Each operation's answer is what it should be (before anything is measured)."""
    ecs, logs = target.client("ecs"), target.client("logs")
    assert (
        len(ecs.describe_tasks(cluster="bench100", tasks=target.facts["hundred"])["tasks"]) == 100
    )
    assert len(ecs.list_tasks(cluster="bench100", maxResults=100)["taskArns"]) == 100
    events = logs.get_log_events(logGroupName="/bench/logs", logStreamName="s", startFromHead=True)
    assert len(events["events"]) == 100, (target.name, len(events["events"]))
    status = ecs.run_task(cluster="benchrun", taskDefinition="bench-run")["tasks"][0]["lastStatus"]
    print(f"  {target.name}: RunTask answers lastStatus {status}")


def measure(target: Target, op: str, seconds: float, connections: int) -> dict[str, float]:
    host, port = target.host_port
    signer = Signer(f"{host}:{port}")
    if target.name == "trivial":
        service, amz_target, body = _ecs("DescribeTasks", {"cluster": "bench", "tasks": ["x"]})
    else:
        service, amz_target, body = OPERATIONS[op](target)
    return asyncio.run(
        load(
            host,
            port,
            lambda: signer.request(service, amz_target, body),
            seconds,
            connections,
        )
    )


def cold_starts(runs: int) -> list[float]:
    times = []
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
            proc.terminate()
            proc.wait(timeout=30)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--targets", default="ecslocal,moto,ministack")
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--run-command", default="", help="RunTask's command (default: none)")
    parser.add_argument(
        "--baseline",
        default="",
        metavar="SRC",
        help="also measure the ecslocal of this src directory (e.g. /work/main/src) as 'before'",
    )
    parser.add_argument("--history", type=int, default=HISTORY, help="stopped tasks stored")
    parser.add_argument("--trivial-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trivial_server:
        trivial_server()
        return
    # A SIGTERM (timeout, kill) still stops every target the bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    check_signer()
    ops = [o for o in args.ops.split(",") if o]
    unknown = set(ops) - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    names = [n for n in args.targets.split(",") if n]
    starters = {"ecslocal": start_ecslocal, "moto": start_moto, "ministack": start_ministack}
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    if args.cold_starts:
        starts = cold_starts(args.cold_starts)
        print(
            f"ecslocal serve cold start (exec to 'ready on'): median"
            f" {percentile(starts, 50) * 1000:.0f} ms, min {min(starts) * 1000:.0f} ms,"
            f" max {max(starts) * 1000:.0f} ms ({len(starts)} runs)"
        )
    targets: list[Target] = []
    try:
        for name in names:
            targets.append(starters[name]())
        if args.baseline:
            targets.append(start_ecslocal("before", args.baseline))
            names.append("before")
        targets.append(start_trivial())
        command = args.run_command.split() or None
        for t in targets:
            if t.name != "trivial":
                began = time.perf_counter()
                prepare(t, command, args.history)
                check_answers(t)
                print(f"  {t.name}: prepared in {time.perf_counter() - began:.0f} s")
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for i in range(args.rounds):
            order = targets[i % len(targets) :] + targets[: i % len(targets)]
            for op in ops:
                for t in order:
                    if t.name == "trivial" and op != "DescribeTasks(1)":
                        continue
                    r = measure(t, op, args.seconds, args.connections)
                    results.setdefault((op, t.name), []).append(r)
                    print(
                        f"round {i + 1} {op:24s} {t.name:9s} {r['req_per_s']:8.0f} req/s"
                        f"  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                        f"  ({r['requests']:.0f} requests, {r['errors']:.0f} non-200)",
                        flush=True,
                    )
    finally:
        for t in targets:
            t.stop()
    report(results, ops, names, args.history)


def report(
    results: dict[tuple[str, str], list[dict[str, float]]],
    ops: list[str],
    names: list[str],
    history: int,
) -> None:
    def median(op: str, name: str) -> float | None:
        rounds = results.get((op, name))
        return percentile([r["req_per_s"] for r in rounds], 50) if rounds else None

    peers = [n for n in names if n != "ecslocal"]  # "before": ecslocal before the change
    header = f"{'median req/s':24s}" + "".join(f"{n:>11s}" for n in names)
    header += "".join(f"{'vs ' + n:>15s}" for n in peers)
    print("\n" + header)
    failures = []
    goals = {"moto": 10.0, "ministack": 2.0}
    for op in ops:
        values = {n: median(op, n) for n in names}
        line = f"{op:24s}" + "".join(
            f"{values[n]:11.0f}" if values[n] is not None else f"{'-':>11s}" for n in names
        )
        mine = values.get("ecslocal")
        for peer in peers:
            theirs = values[peer]
            if mine is None or not theirs:
                line += f"{'-':>15s}"
                continue
            ratio = mine / theirs
            ok = ratio >= goals.get(peer, 0)
            line += f"{ratio:12.1f}x {'ok' if ok else '!!'}"
            if not ok:
                failures.append(f"{op}: {ratio:.1f}x {peer} (goal {goals[peer]:.0f}x)")
        print(line)
    ceiling = median("DescribeTasks(1)", "trivial")
    mine = median("DescribeTasks(1)", "ecslocal")
    if ceiling and mine:
        share = mine / ceiling
        print(
            f"\nDescribeTasks(1): {share:.0%} of the trivial aiohttp handler ({ceiling:.0f}"
            f" req/s) (goal >= 60 %)"
        )
        if share < 0.6:
            failures.append(f"DescribeTasks(1) at {share:.0%} of the ceiling")
    page = median("ListTasks(10k stopped)", "ecslocal")
    if page is not None:
        print(
            f"ListTasks page with {history:,} stopped tasks stored: {page:.0f} req/s"
            " (goal >= 1,000)"
        )
        if page < 1000:
            failures.append("ListTasks with the stopped history under 1,000 req/s")
    print("\ngoals missed: " + ("; ".join(failures) if failures else "none"))


if __name__ == "__main__":
    main()
