"""The benchmarks' load generator: requests back to back on keep-alive connections, one
asyncio task per connection, each request's bytes made fresh by ``make`` (a new signature per
request, not a replayed one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from _server import percentile


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status, close


async def connection(
    host: str,
    port: int,
    make: Callable[[], bytes],
    until: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    """Requests back to back on one keep-alive connection; a server that answers
    ``Connection: close`` (moto's werkzeug) is reconnected to, inside the next request's time."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            if writer.is_closing():
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(make())
            status, close = await _read_response(reader)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
            if close:
                writer.close()
    finally:
        writer.close()


async def load(
    host: str, port: int, make: Callable[[], bytes], seconds: float, connections: int
) -> dict[str, float]:
    warm: list[float] = []
    await asyncio.gather(
        *(
            connection(host, port, make, time.perf_counter() + 0.3, warm, [])
            for _ in range(connections)
        )
    )
    latencies: list[float] = []
    errors: list[int] = []
    began = time.perf_counter()
    await asyncio.gather(
        *(
            connection(host, port, make, began + seconds, latencies, errors)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - began
    return {
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": float(len(errors)),
        "requests": float(len(latencies)),
    }
