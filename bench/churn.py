"""Churn: run N short tasks whose containers leave detached children behind, then report what
is left (processes, the daemon's file descriptors and RSS), how long ListTasks takes to page
through the stopped history, and the health route's latency while clients page.

    python3 bench/churn.py [--tasks 2000] [--parallel 20] [--pagers 4]

Each container starts a ``setsid`` grandchild that sleeps for ten minutes and a double-forked
one, then exits 0: on Fargate both die with the task. A surviving process is found by a marker
in its environment, so the count covers every task of the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import BenchServer, percentile  # noqa: E402

MARK = "ECSLOCAL_CHURN_MARK"


def survivors(value: str) -> int:
    needle = f"{MARK}={value}".encode()
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found += 1
        except OSError:
            continue
    return found


def daemon_fds_rss(pid: int) -> tuple[int, float]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, rss / 1024


def page_all(ecs: Any, status: str) -> tuple[int, float]:
    began = time.perf_counter()
    count, token = 0, None
    while True:
        kwargs: dict[str, Any] = {"desiredStatus": status, "maxResults": 100}
        if token:
            kwargs["nextToken"] = token
        page = ecs.list_tasks(**kwargs)
        count += len(page["taskArns"])
        token = page.get("nextToken")
        if not token:
            return count, time.perf_counter() - began


def health_latencies(url: str, seconds: float) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        with urllib.request.urlopen(url + "/_ecslocal/v1/health") as r:
            r.read()
        out.append(time.perf_counter() - start)
        time.sleep(0.01)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--pagers", type=int, default=4)
    args = parser.parse_args()
    value = f"churn-{os.getpid()}"
    command = "setsid sleep 600 & (sleep 600 &) ; exit 0"  # a new session, and a double fork
    with BenchServer() as server:
        ecs = server.ecs()
        ecs.register_task_definition(
            family="churn",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": "busybox",
                    "command": ["sh", "-c", command],
                    "memory": 64,
                    "environment": [{"name": MARK, "value": value}],
                }
            ],
        )
        fds0, rss0 = daemon_fds_rss(server.proc.pid)
        began = time.perf_counter()
        arns: list[str] = []
        lock = threading.Lock()

        def batch(n: int) -> None:
            client = server.ecs()
            got = [t["taskArn"] for t in client.run_task(taskDefinition="churn", count=n)["tasks"]]
            client.get_waiter("tasks_stopped").wait(
                tasks=got, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
            )
            with lock:
                arns.extend(got)

        sizes = [10] * (args.tasks // 10) + ([args.tasks % 10] if args.tasks % 10 else [])
        with ThreadPoolExecutor(max(1, args.parallel // 10)) as pool:
            list(pool.map(batch, sizes))
        elapsed = time.perf_counter() - began
        time.sleep(1.0)
        left = survivors(value)
        fds1, rss1 = daemon_fds_rss(server.proc.pid)
        print(f"{len(arns)} tasks in {elapsed:.1f} s; processes left behind: {left}")
        print(f"daemon fds {fds0} -> {fds1}; RSS {rss0:.0f} -> {rss1:.0f} MiB")
        count, seconds = page_all(ecs, "STOPPED")
        print(f"ListTasks STOPPED, 100 a page: {count} tasks in {seconds * 1000:.0f} ms")
        idle = health_latencies(server.url, 2.0)
        stop = threading.Event()

        def pager() -> None:
            client = server.ecs()
            while not stop.is_set():
                page_all(client, "STOPPED")

        threads = [threading.Thread(target=pager) for _ in range(args.pagers)]
        for t in threads:
            t.start()
        busy = health_latencies(server.url, 4.0)
        stop.set()
        for t in threads:
            t.join()
        print(
            f"health route p50/p99: idle {percentile(idle, 50) * 1000:.1f}/"
            f"{percentile(idle, 99) * 1000:.1f} ms; with {args.pagers} pagers "
            f"{percentile(busy, 50) * 1000:.1f}/{percentile(busy, 99) * 1000:.1f} ms"
        )
    left = survivors(value)
    print(f"after the daemon stopped: processes left behind: {left}")


if __name__ == "__main__":
    main()
