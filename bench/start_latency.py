"""Task start latency: RunTask -> RUNNING for a one-container `sleep` task.

Two figures per run: as the client sees it (RunTask sent until DescribeTasks first reports
RUNNING, polled every millisecond), and as the task records it (startedAt - createdAt).
Target (issue 2): p50 <= 30 ms.

    python3 bench/start_latency.py [--tasks 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import BenchServer, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument(
        "--memory-enforcement", default="auto", choices=["auto", "cgroup", "rss", "off"]
    )
    args = parser.parse_args()
    with BenchServer("--memory-enforcement", args.memory_enforcement) as server:
        ecs = server.ecs()
        ecs.register_task_definition(
            family="bench-sleep",
            containerDefinitions=[
                {
                    "name": "sleep",
                    "image": "busybox",
                    "command": ["sleep", "600"],
                    "memory": 32,
                    "stopTimeout": 2,
                }
            ],
        )
        client_ms: list[float] = []
        server_ms: list[float] = []
        started: list[str] = []  # stopped at the end, so no stop overlaps a measured start
        for _ in range(args.tasks):
            t0 = time.perf_counter()
            arn = ecs.run_task(taskDefinition="bench-sleep")["tasks"][0]["taskArn"]
            while True:
                task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
                if task["lastStatus"] == "RUNNING":
                    break
                time.sleep(0.001)
            client_ms.append((time.perf_counter() - t0) * 1000)
            server_ms.append((task["startedAt"] - task["createdAt"]).total_seconds() * 1000)
            started.append(arn)
        for arn in started:
            ecs.stop_task(task=arn)
        for name, values in (
            ("client RunTask->RUNNING", client_ms),
            ("server createdAt->startedAt", server_ms),
        ):
            print(
                f"{name}: n={len(values)} p50={percentile(values, 50):.1f} ms"
                f" p99={percentile(values, 99):.1f} ms max={max(values):.1f} ms"
            )


if __name__ == "__main__":
    main()
