"""REST throughput and latency of MediCore against a bare FastAPI endpoint, in one run.

    python bench/rest.py [--concurrency 16] [--seconds 8]

Starts both servers (one uvicorn worker each, loopback), drives read, create and a
10-entry transaction at the same concurrency, and prints a table with the ratio to the
baseline: on shared, noisy machines only the ratio is meaningful.
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
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.loadgen import LoadResult, free_port, run_load

ROOT = Path(__file__).resolve().parent.parent


def _patient(i: int) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:1.2.410.100", "value": f"MRN-{i}-{uuid.uuid4().hex[:6]}"}
        ],
        "name": [{"family": "Kim", "given": ["Minsu"]}],
        "gender": "male",
        "birthDate": "1980-01-01",
    }


def _transaction(i: int) -> bytes:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, object]] = [
        {
            "fullUrl": patient_url,
            "resource": _patient(i),
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for k in range(9):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": patient_url},
                    "valueQuantity": {
                        "value": 60 + k,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _start(command: list[str], port: int, cwd: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MEDICORE_MLLP_PORT": "0"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/fhir/Patient/p1", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start")


def ratio_row(name: str, base: LoadResult, ours: LoadResult) -> str:
    """A table row: both runs' rate and p50 / p99, their ratio, the errors of both."""
    ratio = ours.rate / base.rate if base.rate else float("nan")
    return (
        f"| {name} | {base.rate:,.0f} | {base.p50:.1f} / {base.percentile(0.99):.1f} | "
        f"{ours.rate:,.0f} | {ours.p50:.1f} / {ours.percentile(0.99):.1f} | "
        f"{ratio:.2f} | {base.errors + ours.errors} |"
    )


def bench_token(folder: Path, store_uri: str | None = None) -> str:
    """A doctor's token made with the CLI in the server's folder (same store and keys)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = ["--store", store_uri or f"sqlite:///{folder / 'bench.db'}"]
    cli = [sys.executable, "-m", "fhir_server.cli"]
    subprocess.run(
        [
            *cli,
            "users",
            "add",
            "bench-doctor",
            "--role",
            "doctor",
            "--password",
            "bench-pass-1",
            *store,
        ],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
    )
    printed = subprocess.run(
        [*cli, "token", "--user", "bench-doctor", "--scope", "user/*.cruds", *store],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return printed.stdout.strip().splitlines()[-1]


def seed_patient(port: int, folder: Path, store_uri: str | None = None) -> dict[str, str]:
    """Put Patient/p1 (what the read scenario reads); the doctor's Authorization header."""
    auth = {"Authorization": f"Bearer {bench_token(folder, store_uri)}"}
    seed = httpx.put(
        f"http://127.0.0.1:{port}/fhir/Patient/p1",
        json={**_patient(0), "id": "p1"},
        headers=auth,
        timeout=10,
    )
    seed.raise_for_status()
    return auth


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="medicore-bench-"))
    base_port, our_port = free_port(), free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    baseline = _start(
        [*uvicorn, "bench.baseline_app:app", "--port", str(base_port)], base_port, ROOT
    )
    ours = _start(
        [
            sys.executable,
            "-m",
            "fhir_server.cli",
            "serve",
            "--port",
            str(our_port),
            "--store",
            f"sqlite:///{tmp / 'bench.db'}",
            "--log-level",
            "warning",
        ],
        our_port,
        tmp,
    )
    try:
        auth = seed_patient(our_port, tmp)
        scenarios = {
            "read Patient": lambda i: ("GET", "/fhir/Patient/p1", b""),
            "create Patient": lambda i: ("POST", "/fhir/Patient", orjson.dumps(_patient(i))),
            "transaction (10 entries)": lambda i: ("POST", "/fhir", _transaction(i)),
        }
        rows = []
        for name, make in scenarios.items():
            kwargs = dict(
                concurrency=args.concurrency, max_requests=200_000, max_seconds=args.seconds
            )
            base_result = await run_load("127.0.0.1", base_port, make, **kwargs)
            our_result = await run_load("127.0.0.1", our_port, make, headers=auth, **kwargs)
            rows.append(ratio_row(name, base_result, our_result))
        print(
            f"concurrency {args.concurrency}, {args.seconds:.0f} s per cell, "
            "one uvicorn worker each, "
            f"{os.cpu_count()} cores\n"
        )
        print(
            "| scenario | baseline req/s | baseline p50 / p99 ms | MediCore req/s "
            "| MediCore p50 / p99 ms | ratio | errors |"
        )
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    finally:
        for process in (baseline, ours):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
