"""Small-request latency while the largest allowed requests run (issue #16).

    python bench/bounds.py [--rounds 6]

Starts ``medicore serve`` (one uvicorn worker, loopback), then alternates quiet windows
and windows in which one maximum-size request runs (a Patient just under the element
limit; a transaction of ``max_bundle_entries`` entries), while one client sends small
requests back to back. Prints the small requests' p50/p99 in both kinds of window, the
p99 ratio, and how long the large request took. Quiet and busy windows alternate so that
both see the same machine noise: on a shared machine only the ratio is meaningful.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.loadgen import free_port, read_response
from fhir_server.api.limits import RequestLimits, check_resource_bounds

ROOT = Path(__file__).resolve().parent.parent
Request = tuple[str, str, bytes]  # method, path, body


def elements(value: Any) -> int:
    """JSON values below ``value``, counted as ``fhir_server.api.limits`` counts them."""
    if isinstance(value, dict):
        return len(value) + sum(elements(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(elements(v) for v in value)
    return 0


def largest_patient(limits: RequestLimits) -> dict[str, Any]:
    """A Patient one element under the element limit, no array over the array limit."""
    names = min(limits.max_array_length, limits.max_resource_elements // 8)
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": f"Family{i}", "given": ["Given", f"G{i}"]} for i in range(names)],
    }
    # Then identifiers (3 elements each) and telecoms (4 each) up to one under the limit.
    for key, item, size in (
        ("identifier", {"system": "urn:oid:1.2.410.100", "value": "M"}, 3),
        ("telecom", {"system": "phone", "value": "010-0000-0000", "use": "home"}, 4),
    ):
        room = limits.max_resource_elements - 1 - elements(patient) - 1  # -1: the key
        count = min(limits.max_array_length, room // size)
        if count > 0:
            patient[key] = [{**item, "value": f"{item['value']}{i}"} for i in range(count)]
    check_resource_bounds(patient, "Patient", limits)
    return patient


def largest_transaction(limits: RequestLimits) -> dict[str, Any]:
    """``max_bundle_entries`` entries: a Patient and Observations that point at it."""
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient_url,
            "resource": {"resourceType": "Patient", "name": [{"family": "Kim"}]},
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for k in range(limits.max_bundle_entries - 1):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": patient_url},
                    "effectiveDateTime": "2026-01-01T10:00:00+09:00",
                    "valueQuantity": {
                        "value": 60 + k % 40,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: Request,
    headers: str,
) -> int:
    method, path, body = request
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return await read_response(reader)


@dataclass
class Probe:
    idle_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)
    large_seconds: list[float] = field(default_factory=list)
    large_statuses: list[int] = field(default_factory=list)
    small_statuses: set[int] = field(default_factory=set)

    @staticmethod
    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def ratio(self) -> float:
        return self.p(self.busy_ms, 0.99) / self.p(self.idle_ms, 0.99)


def _past(instant: float) -> bool:
    return time.monotonic() >= instant


async def probe(
    port: int,
    *,
    small: Request,
    large: Request,
    rounds: int,
    idle_seconds: float = 1.0,
    min_busy: int = 100,
    max_seconds: float = 120.0,
    headers: str = "",
    pause: float = 0.002,
) -> Probe:
    """Alternate quiet windows and windows with one ``large`` request in flight; stop
    after ``rounds`` of each once ``min_busy`` busy samples exist (or at ``max_seconds``)."""
    result = Probe()
    deadline = time.monotonic() + max_seconds
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:

        async def smalls(into: list[float], until: Callable[[], bool]) -> None:
            while not until() and time.monotonic() < deadline:
                started = time.perf_counter()
                result.small_statuses.add(await _exchange(reader, writer, small, headers))
                into.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(pause)

        async def one_large(finished: asyncio.Event) -> None:
            # A new connection each time: the server closes idle keep-alive ones.
            large_reader, large_writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.perf_counter()
            try:
                status = await _exchange(large_reader, large_writer, large, headers)
            finally:
                large_writer.close()
            result.large_seconds.append(time.perf_counter() - started)
            result.large_statuses.append(status)
            finished.set()

        done = 0
        while time.monotonic() < deadline and (done < rounds or len(result.busy_ms) < min_busy):
            quiet_until = time.monotonic() + idle_seconds
            await smalls(result.idle_ms, functools.partial(_past, quiet_until))
            finished = asyncio.Event()
            await asyncio.gather(one_large(finished), smalls(result.busy_ms, finished.is_set))
            done += 1
    finally:
        writer.close()
    return result


def start(folder: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fhir_server.cli",
            "serve",
            "--port",
            str(port),
            "--store",
            f"sqlite:///{folder / 'bench.db'}",
            "--log-level",
            "warning",
        ],
        cwd=folder,
        stdout=(folder / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MEDICORE_MLLP_PORT": "0",
            "MEDICORE_AUTH_REQUIRED": "false",
            **env,
        },
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start")


def large_requests(limits: RequestLimits) -> dict[str, Request]:
    return {
        "Patient at the element limit": (
            "POST",
            "/fhir/Patient",
            orjson.dumps(largest_patient(limits)),
        ),
        f"transaction of {limits.max_bundle_entries} entries": (
            "POST",
            "/fhir",
            orjson.dumps(largest_transaction(limits)),
        ),
    }


SMALL_REQUESTS: dict[str, Request] = {
    "read (audited)": ("GET", "/fhir/Patient/p1", b""),
    "metadata": ("GET", "/fhir/metadata", b""),
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1, help="MEDICORE_CPU_WORKERS")
    parser.add_argument("--only", default="", help="run the rows whose names contain this")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="medicore-bounds-"))
    port = free_port()
    server = start(folder, port, {"MEDICORE_CPU_WORKERS": str(args.workers)})
    try:
        httpx.put(
            f"http://127.0.0.1:{port}/fhir/Patient/p1",
            json={"resourceType": "Patient", "id": "p1"},
            timeout=10,
        ).raise_for_status()
        limits = RequestLimits()
        print(f"{os.cpu_count()} cores, MEDICORE_CPU_WORKERS={args.workers}, defaults\n")
        print(
            "| large request | small request | idle p50 / p99 ms | during p50 / p99 ms "
            "| p99 ratio | large request s (median) |"
        )
        print("|---|---|---|---|---|---|")
        for large_name, large in large_requests(limits).items():
            for small_name, small in SMALL_REQUESTS.items():
                if args.only not in f"{large_name} {small_name}":
                    continue
                found = await probe(port, small=small, large=large, rounds=args.rounds)
                seconds = sorted(found.large_seconds)[len(found.large_seconds) // 2]
                print(
                    f"| {large_name} ({len(large[2]) // 1024} KiB) | {small_name} | "
                    f"{Probe.p(found.idle_ms, 0.5):.1f} / {Probe.p(found.idle_ms, 0.99):.1f} | "
                    f"{Probe.p(found.busy_ms, 0.5):.1f} / {Probe.p(found.busy_ms, 0.99):.1f} | "
                    f"{found.ratio:.2f} | {seconds:.2f} (status {found.large_statuses[0]}) |"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
        print(f"\nserver log: {folder / 'server.log'}")


if __name__ == "__main__":
    asyncio.run(main())
