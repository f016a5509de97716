"""Soak: N minutes of mixed traffic against a real ``medicore serve``, reported per minute.

    python -m bench.soak                   10 minutes (``--minutes 3`` for a short run)
    python -m bench.soak --minutes 3 --concurrency 8 --hl7-rate 5

HTTP: 70% reads (Patient, Observation by id), 20% searches (Patient by family,
Observation by subject, code and date), 10% writes (Observation create, Patient update),
all with a doctor's token; plus one MLLP connection feeding ORU^R01 messages at a fixed
rate. Each minute: requests/s, p50/p99 latency, errors (any status other than the one
expected, any ACK other than AA: must be 0) and the server's RSS. The target is RSS growth
of at most 10% from the end of the first minute to the end of the run. Loopback only,
bounded by time; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.hl7 import oru
from bench.loadgen import free_port, read_response
from bench.rest import bench_token
from fhir_server.hl7.client import MllpClient, ack_code

ROOT = Path(__file__).resolve().parent.parent
PATIENTS = 200


@dataclass
class Window:
    """What happened in one reporting interval."""

    started: float
    latencies_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"read": [], "search": [], "write": [], "hl7": []}
    )
    errors: int = 0

    def add(self, kind: str, started: float, ok: bool) -> None:
        self.latencies_ms[kind].append((time.perf_counter() - started) * 1000)
        self.errors += not ok


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _patient(n: int, version: int = 0) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": f"soak-{n}",
        "identifier": [{"system": "urn:oid:1.2.410.100.1", "value": f"S-{n}"}],
        "name": [{"family": f"Soak{n % 50}", "given": [f"G{version}"]}],
        "gender": "female" if n % 2 else "male",
        "birthDate": f"19{50 + n % 50}-01-01",
    }


def _observation(n: int) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/soak-{n % PATIENTS}"},
        "effectiveDateTime": f"2024-03-{1 + n % 28:02d}T10:00:00+09:00",
        "valueQuantity": {"value": 60 + n % 40, "unit": "/min",
                          "system": "http://unitsofmeasure.org", "code": "/min"},
    }  # fmt: skip


def request_for(rng: random.Random, n: int) -> tuple[str, str, str, bytes, int]:
    """(kind, method, path, body, expected status): 70% reads, 20% searches, 10% writes."""
    roll = rng.random()
    p = rng.randrange(PATIENTS)
    if roll < 0.70:
        if rng.random() < 0.5:
            return "read", "GET", f"/fhir/Patient/soak-{p}", b"", 200
        return "read", "GET", f"/fhir/Observation/soak-obs-{p}", b"", 200
    if roll < 0.90:
        path = rng.choice(
            [
                f"/fhir/Patient?family=Soak{p % 50}",
                f"/fhir/Observation?subject=Patient/soak-{p}&_count=10",
                "/fhir/Observation?code=http://loinc.org|8867-4&date=ge2024-03-20&_count=20",
            ]
        )
        return "search", "GET", path, b"", 200
    if rng.random() < 0.5:
        return "write", "POST", "/fhir/Observation", orjson.dumps(_observation(n)), 201
    return "write", "PUT", f"/fhir/Patient/soak-{p}", orjson.dumps(_patient(p, n)), 200


class Soak:
    def __init__(self, host: str, http_port: int, mllp_port: int, token: str) -> None:
        self.host, self.http_port, self.mllp_port = host, http_port, mllp_port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.window = Window(time.perf_counter())
        self.counter = 0

    async def http_worker(self, seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(self.host, self.http_port)
        try:
            while time.perf_counter() < deadline:
                self.counter += 1
                kind, method, path, body, expected = request_for(rng, self.counter)
                writer.write(
                    (
                        f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}"
                        f"Content-Type: application/fhir+json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                started = time.perf_counter()
                status = await read_response(reader)
                self.window.add(kind, started, status == expected)
        finally:
            writer.close()

    async def hl7_feed(self, rate: float, deadline: float) -> None:
        """One MLLP connection, ``rate`` ORU^R01 messages a second, each waiting for its AA."""
        run = f"K{int(time.time()) % 100000}-"
        n = 0
        async with MllpClient(self.host, self.mllp_port, timeout=60) as client:
            while time.perf_counter() < deadline:
                tick = time.perf_counter()
                ack = await client.send(oru(run, n, patients=PATIENTS))
                self.window.add("hl7", tick, ack_code(ack) == "AA")
                n += 1
                await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - tick)))

    async def report(self, pid: int, seconds: float, deadline: float) -> list[dict[str, float]]:
        rows: list[dict[str, float]] = []
        minute = 0
        while time.perf_counter() < deadline - 0.5:
            await asyncio.sleep(min(seconds, max(0.0, deadline - time.perf_counter())))
            done, self.window = self.window, Window(time.perf_counter())
            minute += 1
            elapsed = self.window.started - done.started
            http = [v for k in ("read", "search", "write") for v in done.latencies_ms[k]]
            row = {
                "minute": minute * seconds / 60,  # minutes since the start
                "http_per_s": len(http) / elapsed,
                "p50": _percentile(http, 0.50),
                "p99": _percentile(http, 0.99),
                "search_p99": _percentile(done.latencies_ms["search"], 0.99),
                "write_p99": _percentile(done.latencies_ms["write"], 0.99),
                "hl7_per_s": len(done.latencies_ms["hl7"]) / elapsed,
                "hl7_p99": _percentile(done.latencies_ms["hl7"], 0.99),
                "errors": done.errors,
                "rss": rss_mib(pid),
            }
            rows.append(row)
            print(_format(row), flush=True)
        return rows


HEADER = (
    f"{'min':>4} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'srch p99':>8} {'wr p99':>7} "
    f"{'hl7/s':>6} {'hl7 p99':>7} {'errors':>6} {'RSS MiB':>8}"
)


def _format(row: dict[str, float]) -> str:
    return (
        f"{row['minute']:>4.1f} {row['http_per_s']:>7.0f} {row['p50']:>7.1f} {row['p99']:>7.1f} "
        f"{row['search_p99']:>8.1f} {row['write_p99']:>7.1f} {row['hl7_per_s']:>6.1f} "
        f"{row['hl7_p99']:>7.1f} {row['errors']:>6.0f} {row['rss']:>8.1f}"
    )


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    http_port, mllp_port = free_port(), free_port()
    command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(http_port),
               "--mllp-port", str(mllp_port), "--store", f"sqlite:///{folder / 'bench.db'}",
               "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/health/ready").status_code == 200:
                return process, http_port, mllp_port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def seed(http_port: int, token: str) -> None:
    """PATIENTS patients and one Observation each (the reads' targets)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers=headers) as client:
        for n in range(PATIENTS):
            client.put(f"/fhir/Patient/soak-{n}", content=orjson.dumps(_patient(n)))
            obs = {**_observation(n), "id": f"soak-obs-{n}", "subject": {
                "reference": f"Patient/soak-{n}"}}  # fmt: skip
            client.put(f"/fhir/Observation/soak-obs-{n}", content=orjson.dumps(obs))


async def soak(
    args: argparse.Namespace, pid: int, http_port: int, mllp_port: int, token: str
) -> list[dict[str, float]]:
    runner = Soak("127.0.0.1", http_port, mllp_port, token)
    deadline = time.perf_counter() + args.minutes * 60
    print(HEADER, flush=True)
    tasks = [runner.http_worker(n, deadline) for n in range(args.concurrency)]
    tasks.append(runner.hl7_feed(args.hl7_rate, deadline))
    report = asyncio.ensure_future(runner.report(pid, args.window, deadline))
    await asyncio.gather(*tasks)
    return await report


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP connections")
    parser.add_argument("--hl7-rate", type=float, default=5.0, help="HL7 messages per second")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per report row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medicore-soak-") as tmp:
        folder = Path(tmp)
        process, http_port, mllp_port = start_server(folder)
        try:
            token = bench_token(folder)
            seed(http_port, token)
            print(f"server pid {process.pid}, RSS after seeding {rss_mib(process.pid):.1f} MiB")
            rows = asyncio.run(soak(args, process.pid, http_port, mllp_port, token))
        finally:
            process.terminate()
            process.wait(timeout=30)
    if len(rows) >= 2:
        growth = (rows[-1]["rss"] - rows[0]["rss"]) / rows[0]["rss"] * 100
        print(f"RSS growth after the first window: {growth:+.1f}% (target <= +10%)")
    print(f"errors: {sum(int(r['errors']) for r in rows)} (must be 0)")


if __name__ == "__main__":
    main()
