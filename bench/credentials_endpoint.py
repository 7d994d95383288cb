"""Credentials endpoint throughput: GET /v2/credentials/{id} with the task's token, 16
concurrent keep-alive clients from one process, the per-task rate limit lifted
(ECSLOCAL_CREDENTIALS_RATE_LIMIT=off). Target (issue 4): >= 5,000 req/s, p99 <= 5 ms.

    python3 bench/credentials_endpoint.py [--seconds 10] [--connections 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import BenchServer, percentile  # noqa: E402
from loadgen import load  # noqa: E402

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def endpoint(server: BenchServer) -> tuple[str, str]:
    """Run a task with a role whose container prints its credentials URI and token."""
    import boto3

    kw = dict(
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    role = boto3.client("iam", **kw).create_role(RoleName="bench", AssumeRolePolicyDocument=TRUST)[
        "Role"
    ]["Arn"]
    ecs = server.ecs()
    ecs.register_task_definition(
        family="bench-creds",
        taskRoleArn=role,
        containerDefinitions=[
            {
                "name": "app",
                "image": "busybox",
                "memory": 32,
                "command": [
                    "sh",
                    "-c",
                    "echo $AWS_CONTAINER_CREDENTIALS_FULL_URI"
                    " $AWS_CONTAINER_AUTHORIZATION_TOKEN; sleep 600",
                ],
            }
        ],
    )
    arn = ecs.run_task(taskDefinition="bench-creds")["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[-1]
    from ecslocal.client import Client  # signs the local API's log call

    local = Client(server.url, "us-east-1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for event in local.logs(task_id):
            parts = event["message"].split()
            if len(parts) == 2:
                return parts[0], parts[1]
        time.sleep(0.1)
    raise RuntimeError("no credentials endpoint printed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["ECSLOCAL_CREDENTIALS_RATE_LIMIT"] = "off"
    with BenchServer() as server:
        uri, token = endpoint(server)
        parts = urlsplit(uri)
        payload = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: {token}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        results = []
        for i in range(args.rounds):
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            r = asyncio.run(load(host, port, lambda: payload, args.seconds, args.connections))
            results.append(r)
            print(
                f"round {i + 1}: {r['req_per_s']:8.0f} req/s  p50 {r['p50_ms']:5.2f} ms"
                f"  p99 {r['p99_ms']:5.2f} ms  ({r['requests']} requests,"
                f" {r['errors']} non-200)"
            )
        median = {
            k: percentile([r[k] for r in results], 50) for k in ("req_per_s", "p50_ms", "p99_ms")
        }
        print(
            f"median:  {median['req_per_s']:8.0f} req/s  p50 {median['p50_ms']:5.2f} ms"
            f"  p99 {median['p99_ms']:5.2f} ms"
        )
        met = median["req_per_s"] >= 5000 and median["p99_ms"] <= 5
        print(f"target (>= 5,000 req/s, p99 <= 5 ms): {'met' if met else 'NOT met'}")
        if any(r["errors"] for r in results):
            sys.exit("some answers were not 200: the figures above are not the endpoint's")


if __name__ == "__main__":
    main()
