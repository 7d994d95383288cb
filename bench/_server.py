"""Start an `ecslocal serve` for a benchmark (same as the test fixture, without pytest)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

import boto3

READY = re.compile(r"ready on (http://127\.0\.0\.1:(\d+))")


class BenchServer:
    def __init__(self, *extra: str, env: dict[str, str] | None = None) -> None:
        self.extra = extra
        self.env = env or {}

    def __enter__(self) -> BenchServer:
        self.tmp = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecslocal", "serve", "--port", "0", *self.extra],
            env={**os.environ, **self.env, "ECSLOCAL_DATA_DIR": self.tmp.name},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = READY.search(line)
            if m:
                self.url = m.group(1)
                break
        else:
            raise RuntimeError("ecslocal serve exited")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        # A fresh account has no cluster (as in AWS); the benches run in `default`.
        self.ecs().create_cluster(clusterName="default")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def ecs(self) -> Any:
        return boto3.client(
            "ecs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
