"""Read throughput with durable audit on versus audit recording off, in one run.

    python -m bench.audit [--concurrency 16] [--seconds 8] [--rounds 2]

Two servers on the same kind of SQLite file, one with MEDICORE_AUDIT_ENABLED=false (the
benchmark-only switch, refused in production). Rounds alternate between them so that
noise on this shared machine hits both; the ratio is what matters (target: audit costs
at most 25% of read throughput, i.e. a ratio of 0.75 or more).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import LoadResult, free_port, run_load

ROOT = Path(__file__).resolve().parent.parent


def _start(folder: Path, *, audit: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEDICORE_AUTH_REQUIRED": "false",
        "MEDICORE_AUDIT_ENABLED": "true" if audit else "false",
        "MEDICORE_MLLP_PORT": "0",
        "MEDICORE_LOG_LEVEL": "warning",
    }
    command = [
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
    ]
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _with_children(pid: int) -> list[int]:
    """The server and its child processes (the AuditEvent indexer)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *map(int, children)]


def _index_lag(port: int) -> int:
    """AuditEvents recorded but not yet searchable, from the server's own metric."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "medicore_audit_index_backlog":
            return int(family.samples[0].value)
    raise RuntimeError("the server exposes no medicore_audit_index_backlog")


def _seed(port: int) -> None:
    body = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Kim"}], "gender": "male"}
    httpx.put(f"http://127.0.0.1:{port}/fhir/Patient/p1", json=body, timeout=10).raise_for_status()


def _merge(results: list[LoadResult]) -> LoadResult:
    merged = LoadResult(0, 0, 0.0, [])
    for r in results:
        merged.requests += r.requests
        merged.errors += r.errors
        merged.seconds += r.seconds
        merged.latencies_ms += r.latencies_ms
    return merged


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    on_dir, off_dir = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    audited, a_port = _start(on_dir, audit=True)
    plain, p_port = _start(off_dir, audit=False)
    try:
        _seed(a_port)
        _seed(p_port)
        on: list[LoadResult] = []
        off: list[LoadResult] = []
        cpu = {audited.pid: 0.0, plain.pid: 0.0}  # server CPU seconds during the rounds
        indexer_pids = _with_children(audited.pid)[1:]
        indexer_cpu = sum(_cpu_seconds(pid) for pid in indexer_pids)
        make = lambda i: ("GET", "/fhir/Patient/p1", b"")  # noqa: E731
        for _ in range(args.rounds):
            for process, port, bucket in ((plain, p_port, off), (audited, a_port, on)):
                before = _cpu_seconds(process.pid)
                bucket.append(
                    await run_load(
                        "127.0.0.1",
                        port,
                        make,
                        concurrency=args.concurrency,
                        max_requests=500_000,
                        max_seconds=args.seconds,
                    )
                )
                cpu[process.pid] += _cpu_seconds(process.pid) - before
        indexer_cpu = sum(_cpu_seconds(pid) for pid in indexer_pids) - indexer_cpu
        lag = _index_lag(a_port)
        a, b = _merge(on), _merge(off)
        print(
            f"read Patient, concurrency {args.concurrency}, {args.rounds} alternating rounds "
            f"of {args.seconds:.0f} s, one uvicorn worker each, {os.cpu_count()} cores\n"
        )
        print("| audit | req/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|")
        print(
            f"| off (benchmark switch) | {b.rate:,.0f} | {b.p50:.1f} | {b.percentile(0.99):.1f} "
            f"| {b.errors} |"
        )
        print(
            f"| on (durable, chained) | {a.rate:,.0f} | {a.p50:.1f} | {a.percentile(0.99):.1f} "
            f"| {a.errors} |"
        )
        print(
            f"\nratio on/off: {a.rate / b.rate:.2f} "
            f"(audit costs {100 * (1 - a.rate / b.rate):.0f}%)"
        )
        if a.requests and b.requests and cpu[plain.pid]:
            on_us = cpu[audited.pid] / a.requests * 1e6
            off_us = cpu[plain.pid] / b.requests * 1e6
            print(
                f"server CPU per read: {off_us:.0f} µs off, {on_us:.0f} µs on "
                f"(audit: +{on_us - off_us:.0f} µs); AuditEvent indexer process: "
                f"{indexer_cpu / a.requests * 1e6:.0f} µs per read, {lag} events behind at the end"
            )
    finally:
        for process in (audited, plain):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
