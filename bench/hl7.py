"""HL7 v2 ingest throughput: ORU^R01 (5 OBX) over MLLP, several connections, durable ACKs.

    python -m bench.hl7                       start a server on a temp SQLite file, measure
    python -m bench.hl7 --port 2575           measure a server that is already running
    python -m bench.hl7 --connections 8 --messages 5000

An AA is only sent once the message and its resources are committed (SQLite WAL,
``synchronous=FULL``), so messages/s here is messages/s with a durable ACK.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.loadgen import free_port
from fhir_server.hl7.client import MllpClient, ack_code

OBX = [
    ("2345-7", "Glucose", "105", "mg/dL", "70-99", "H"),
    ("2160-0", "Creatinine", "0.9", "mg/dL", "0.7-1.3", "N"),
    ("2093-3", "Cholesterol", "180", "mg/dL", "<200", "N"),
    ("2571-8", "Triglyceride", "140", "mg/dL", "<150", "N"),
    ("2085-9", "HDL Cholesterol", "55", "mg/dL", ">40", "N"),
]


def oru(run: str, n: int, *, patients: int) -> bytes:
    """ORU^R01 number ``n``: its own order and control id, one of ``patients`` patients."""
    segments = [
        f"MSH|^~\\&|BENCHLAB|SGH|MEDICORE|MEDICORE|20240305101500+0900||ORU^R01^ORU_R01|"
        f"{run}{n}|P|2.5.1|||AL|NE||UNICODE UTF-8",
        f"PID|1||B{run}-{n % patients}^^^SGH&2.16.840.1.113883.3.9999&ISO^MR||Kim^Minjun||"
        "19880101|M",
        f"ORC|RE|P{run}{n}^MEDIORD|F{run}{n}^BENCHLAB",
        f"OBR|1|P{run}{n}^MEDIORD|F{run}{n}^BENCHLAB|24323-8^Metabolic panel^LN|||"
        "20240305093000+0900||||||||||||||20240305101000+0900|||F",
    ]
    for i, (code, name, value, unit, ref, flag) in enumerate(OBX, start=1):
        segments.append(f"OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}^^UCUM|{ref}|{flag}|||F")
    return ("\r".join(segments) + "\r").encode()


async def _sender(port: int, messages: list[bytes], latencies: list[float]) -> int:
    ok = 0
    async with MllpClient("127.0.0.1", port, timeout=120) as client:
        for message in messages:
            started = time.perf_counter()
            ack = await client.send(message)
            latencies.append(time.perf_counter() - started)
            ok += ack_code(ack) == "AA"
    return ok


async def measure(port: int, *, connections: int, messages: int, run: str) -> dict[str, float]:
    batch = [oru(run, n, patients=200) for n in range(messages)]
    shares = [batch[i::connections] for i in range(connections)]
    latencies: list[float] = []
    started = time.perf_counter()
    accepted = await asyncio.gather(*(_sender(port, share, latencies) for share in shares))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "messages": messages,
        "aa": sum(accepted),
        "seconds": elapsed,
        "per_second": messages / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def _start_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    http_port, mllp_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "fhir_server.cli",
        "serve",
        "--port",
        str(http_port),
        "--mllp-port",
        str(mllp_port),
        "--store",
        f"sqlite:///{folder / 'bench.db'}",
        "--log-level",
        "warning",
    ]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    process = subprocess.Popen(command, env=env, cwd=folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/health/ready").status_code == 200:
                return process, mllp_port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, help="MLLP port of a running server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        process = None
        port = args.port
        if port is None:
            process, port = _start_server(Path(folder))
        try:
            run = f"R{int(time.time()) % 100000}-"
            asyncio.run(
                measure(port, connections=args.connections, messages=args.warmup, run=run + "w")
            )
            result = asyncio.run(
                measure(port, connections=args.connections, messages=args.messages, run=run)
            )
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print("HL7 ORU^R01 (5 OBX) over MLLP, durable ACK")
    print(
        f"{'connections':>12} {'messages':>9} {'AA':>6} {'seconds':>8} {'msg/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    print(
        f"{args.connections:>12} {result['messages']:>9.0f} {result['aa']:>6.0f} "
        f"{result['seconds']:>8.2f} {result['per_second']:>8.0f} "
        f"{result['p50_ms']:>7.1f} {result['p99_ms']:>7.1f}"
    )


if __name__ == "__main__":
    main()
