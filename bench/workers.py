"""What a second worker buys: ``medicore serve --workers 2`` against ``--workers 1``, same run.

    python -m bench.workers [--seconds 6] [--concurrency 32] [--hl7-messages 1500]
    python -m bench.workers --mongo      also on a MongoDB wire-protocol server (SecantusDB,
                                         started like the tests' one; replica set)
    python -m bench.workers --loadgen python|wrk   (default: wrk when installed)

Both servers run side by side on their own store (an SQLite file each, or a database
each on the one MongoDB server), with everything on: tokens, scopes, an AuditEvent per
request. Each scenario is measured on one server and then the other within seconds, and
reported as the ratio of the two: on a shared, noisy machine only the ratio means
something. The load generator runs on the same cores as the servers: ``wrk`` (C) where
installed, since the Python one takes most of a core at the rates two workers reach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.hl7 import measure as measure_hl7
from bench.loadgen import LoadResult, RequestFactory, free_port, run_load
from bench.rest import ROOT, _patient, ratio_row, seed_patient
from bench.wrk import available as wrk_available
from bench.wrk import run_wrk


@dataclass
class Server:
    workers: int
    http_port: int
    mllp_port: int
    auth: dict[str, str]


@contextmanager
def running(workers: int, store: str | None) -> Iterator[Server]:
    folder = Path(tempfile.mkdtemp(prefix=f"medicore-bench-w{workers}-"))
    store = store or f"sqlite:///{folder / 'bench.db'}"
    http_port, mllp_port = free_port(), free_port()
    command = [sys.executable, "-m", "fhir_server.cli", "serve", "--workers", str(workers)]
    command += ["--port", str(http_port), "--mllp-port", str(mllp_port), "--store", store]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(http_port)
        yield Server(workers, http_port, mllp_port, seed_patient(http_port, folder, store))
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not become ready")


async def _rest_rows(
    one: Server, two: Server, *, seconds: float, concurrency: int, use_wrk: bool
) -> list[str]:
    scenarios = {
        "read Patient": lambda i: ("GET", "/fhir/Patient/p1", b""),
        "create Patient": lambda i: ("POST", "/fhir/Patient", orjson.dumps(_patient(i))),
    }
    rows = []
    for name, make in scenarios.items():
        results = [
            await _load(server, make, seconds=seconds, concurrency=concurrency, use_wrk=use_wrk)
            for server in (one, two)
        ]
        rows.append(ratio_row(name, *results))
    return rows


def settle(*servers: Server, timeout: float = 180.0) -> None:
    """Wait until each server's AuditEvent indexer has caught up: a backlog left by the
    last cell would otherwise be indexed on the cores the next cell is measuring."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while time.monotonic() < deadline and _backlog(server) > 0:
            time.sleep(0.5)


def _backlog(server: Server) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.http_port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("medicore_audit_index_backlog"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _load(
    server: Server, make: RequestFactory, *, seconds: float, concurrency: int, use_wrk: bool
) -> LoadResult:
    settle(server)
    if use_wrk:  # one fixed request (creates repeat one body: each POST is a new Patient)
        method, path, body = make(0)
        return await asyncio.to_thread(
            run_wrk,
            server.http_port,
            path,
            method=method,
            body=body,
            headers=server.auth,
            concurrency=concurrency,
            seconds=seconds,
        )
    return await run_load(
        "127.0.0.1",
        server.http_port,
        make,
        concurrency=concurrency,
        max_requests=1_000_000,
        max_seconds=seconds,
        headers=server.auth,
    )


async def _hl7_row(one: Server, two: Server, *, messages: int) -> str:
    run = f"W{uuid.uuid4().hex[:6]}-"
    rates = []
    for server in (one, two):
        result = await measure_hl7(
            server.mllp_port, connections=8, messages=messages, run=f"{run}{server.workers}"
        )
        rates.append(result)
    ratio = rates[1]["per_second"] / rates[0]["per_second"]
    errors = sum(int(r["messages"] - r["aa"]) for r in rates)
    one_r, two_r = rates
    return (
        f"| HL7 ORU^R01 over MLLP (msg/s) | {one_r['per_second']:,.0f} | "
        f"{one_r['p50_ms']:.1f} / {one_r['p99_ms']:.1f} | {two_r['per_second']:,.0f} | "
        f"{two_r['p50_ms']:.1f} / {two_r['p99_ms']:.1f} | {ratio:.2f} | {errors} |"
    )


async def _measure(
    label: str, stores: tuple[str | None, str | None], args: argparse.Namespace
) -> None:
    with ExitStack() as stack:
        one = stack.enter_context(running(1, stores[0]))
        two = stack.enter_context(running(2, stores[1]))
        rows = await _rest_rows(
            one, two, seconds=args.seconds, concurrency=args.concurrency, use_wrk=args.wrk
        )
        rows.append(await _hl7_row(one, two, messages=args.hl7_messages))
    loadgen = "wrk" if args.wrk else "bench/loadgen.py"
    print(
        f"\n{label}: concurrency {args.concurrency}, {args.seconds:.0f} s per cell, "
        f"{len(os.sched_getaffinity(0))} cores, load from {loadgen}\n"
    )
    print(
        "| scenario | 1 worker /s | p50 / p99 ms | 2 workers /s | p50 / p99 ms | ratio | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def _mongo_stores(port: int) -> tuple[str, str]:
    """Two databases on one fresh replica-set server (the database is the URI's path)."""
    from urllib.parse import urlsplit, urlunsplit

    from tests.mongo_server import start

    parts = urlsplit(start(port, standalone=False))
    one, two = (
        urlunsplit(parts._replace(path=f"/bench_w{n}_{uuid.uuid4().hex[:6]}")) for n in (1, 2)
    )
    return one, two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--hl7-messages", type=int, default=1500)
    parser.add_argument("--mongo", action="store_true", help="also on a SecantusDB server")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="wrk (apt install wrk) costs the servers' cores far less; auto = wrk if installed",
    )
    args = parser.parse_args()
    args.wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and wrk_available())
    asyncio.run(_measure("SQLite", (None, None), args))
    if args.mongo:
        from tests.mongo_server import free_port as mongo_port
        from tests.mongo_server import stop

        port = mongo_port()
        try:
            asyncio.run(_measure("MongoDB (SecantusDB, replica set)", _mongo_stores(port), args))
        finally:
            stop(port)


if __name__ == "__main__":
    main()
