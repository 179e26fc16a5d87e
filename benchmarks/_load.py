"""A small HTTP/1.1 load generator for the serving benchmarks: keep-alive connections on 127.0.0.1, asyncio.

It runs in its own process (``python benchmarks/_load.py ...`` prints one JSON document), so it never shares a GIL
with the server it measures, and every server is measured with the same generator. Each of ``concurrency``
connections sends the same pre-built request, waits for the whole response (Content-Length), and sends the next,
until ``requests`` responses arrived or ``seconds`` passed. Only 127.0.0.1 is ever a target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def build_request(path: str, body: bytes, port: int, content_type: str = "application/json") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _connection(
    port: int, request: bytes, deadline: float, budget: list[int], latencies: list[float], statuses: dict[str, int]
) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            status = head[9:12].decode()
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(port: int, request: bytes, concurrency: int, requests: int, seconds: float, warmup: int) -> LoadResult:
    if warmup:  # connections, caches and the model are warm before the clock starts
        await asyncio.gather(
            *(_connection(port, request, time.perf_counter() + seconds, [warmup // concurrency + 1], [], {}) for _ in range(concurrency))
        )
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    budget = [requests]
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_connection(port, request, deadline, budget, latencies, statuses) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return LoadResult(
        requests=len(latencies),
        errors=sum(n for status, n in statuses.items() if status != "200"),
        seconds=elapsed,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=p99 * 1000,
        statuses=statuses,
    )


def measure(
    port: int, path: str, body: bytes, *, concurrency: int = 8, requests: int = 20_000, seconds: float = 10.0, warmup: int = 500
) -> LoadResult:
    """Run the generator in a fresh process against 127.0.0.1:port and return what it measured."""
    body_file = Path(f"/tmp/serverless-mlops-load-{port}.body")
    body_file.write_bytes(body)
    try:
        out = subprocess.run(
            [sys.executable, __file__, str(port), path, str(body_file), str(concurrency), str(requests), str(seconds), str(warmup)],
            check=True,
            capture_output=True,
            text=True,
            timeout=seconds * 2 + 60,
        ).stdout
    finally:
        body_file.unlink(missing_ok=True)
    doc: dict[str, Any] = json.loads(out)
    return LoadResult(**doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name, kind in (
        ("port", int),
        ("path", str),
        ("body_file", str),
        ("concurrency", int),
        ("requests", int),
        ("seconds", float),
        ("warmup", int),
    ):
        parser.add_argument(name, type=kind)
    args = parser.parse_args()
    request = build_request(args.path, Path(args.body_file).read_bytes(), args.port)
    coroutine = _run(args.port, request, args.concurrency, args.requests, args.seconds, args.warmup)
    try:
        import uvloop

        result = uvloop.run(coroutine)
    except ImportError:
        result = asyncio.run(coroutine)
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    if len(sys.argv) == 1:  # run by hand (make bench skips _*.py): this one only serves benchmarks/inference.py
        print("benchmarks/_load.py: the load generator benchmarks/inference.py runs; nothing to measure on its own")
    else:
        main()
