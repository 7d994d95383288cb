"""The daemon's own CPU with many health-checked tasks running.

Starts N tasks (default 200), each one `sleep` container with a CMD health check every 5 s,
waits until all are RUNNING and have been checked at least once, then measures the daemon
process's user+system CPU over a window. Health check processes are children and are not
counted (their cost is the machine's, as with Docker). Target (issue 2): <= 10% of one core.

    python3 bench/health_cpu.py [--tasks 200] [--window 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import BenchServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    with BenchServer() as server:
        ecs = server.ecs()
        ecs.register_task_definition(
            family="bench-health",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": "busybox",
                    "command": ["sleep", "600"],
                    "memory": 32,
                    "stopTimeout": 2,
                    "healthCheck": {"command": ["CMD", "true"], "interval": 5, "retries": 3},
                }
            ],
        )
        arns: list[str] = []
        while len(arns) < args.tasks:
            n = min(10, args.tasks - len(arns))
            arns += [
                t["taskArn"] for t in ecs.run_task(taskDefinition="bench-health", count=n)["tasks"]
            ]
        deadline = time.monotonic() + 120
        while True:
            healthy = 0
            for i in range(0, len(arns), 100):
                for t in ecs.describe_tasks(tasks=arns[i : i + 100])["tasks"]:
                    healthy += t.get("healthStatus") == "HEALTHY"
            if healthy == len(arns) or time.monotonic() > deadline:
                break
            time.sleep(1)
        print(f"{healthy}/{len(arns)} tasks HEALTHY; measuring {args.window:.0f} s")
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        time.sleep(args.window)
        cpu1, t1 = server.cpu_seconds(), time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0) * 100
        checks_per_s = len(arns) / 5
        print(f"daemon CPU: {share:.1f}% of one core ({checks_per_s:.0f} health checks/s)")
        for arn in arns:
            ecs.stop_task(task=arn)


if __name__ == "__main__":
    main()
