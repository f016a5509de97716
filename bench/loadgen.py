"""A tiny keep-alive HTTP/1.1 load generator on asyncio streams (the client must not be the
bottleneck, so no httpx here); bounded by request count and time, loopback only."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RequestFactory = Callable[[int], tuple[str, str, bytes]]  # i -> (method, path, body)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    # Percentiles measured elsewhere (``wrk`` reports these, not samples).
    fixed_percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if q in self.fixed_percentiles:
            return self.fixed_percentiles[q]
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        if 0.5 in self.fixed_percentiles:
            return self.fixed_percentiles[0.5]
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of the next HTTP/1.1 response on ``reader``, its body read past."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _worker(
    host: str,
    port: int,
    make: RequestFactory,
    counter: list[int],
    limit: int,
    deadline: float,
    result: LoadResult,
    ok: set[int],
    extra_headers: str,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while counter[0] < limit and time.perf_counter() < deadline:
            i = counter[0]
            counter[0] += 1
            method, path, body = make(i)
            request = (
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}"
                f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if status not in ok:
                result.errors += 1
    finally:
        writer.close()


def free_port() -> int:
    """A TCP port nothing listens on right now, for a benchmark server to take."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_load(
    host: str,
    port: int,
    make: RequestFactory,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    ok: set[int] | None = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    result = LoadResult(0, 0, 0.0, [])
    counter = [0]
    started = time.perf_counter()
    deadline = started + max_seconds
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    await asyncio.gather(
        *(
            _worker(
                host, port, make, counter, max_requests, deadline, result, ok or {200, 201}, extra
            )
            for _ in range(concurrency)
        )
    )
    result.seconds = time.perf_counter() - started
    return result
