"""Where a read, a create, a 10-entry transaction and an ORU^R01 spend the server's CPU.

    python -m bench.profile [--seconds 8] [--concurrency 16] [--top 15]

Starts ``medicore serve --workers 1`` on a temp SQLite file (everything on: tokens,
scopes, audit), drives one scenario at a time and records the server process with
``py-spy`` (installed with the test extras' venv: ``pip install py-spy``; sampling, so
the server runs at full speed). For each scenario prints the request rate under the
profiler and the functions with the most samples: by their own time and including what
they call, as a share of the busy samples of every thread (threads waiting on a queue or
in epoll are left out). The AuditEvent indexer is a child process and not included.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.hl7 import measure as measure_hl7
from bench.loadgen import run_load
from bench.rest import _patient, _transaction
from bench.workers import Server, running

OWN_CODE = ("fhir_server/", "audit/", "auth/", "profiles/", "converters/")
# Leaf frames where a thread waits (py-spy counts some blocking C calls as busy): an idle
# pool thread on its queue, the event loop in epoll, the writer thread on its job queue.
WAITING = (
    "_worker (concurrent/futures/thread.py:81)",
    "Runner.run (asyncio/runners.py:118)",
    "select (selectors.py",
    "SqliteEngine._write_loop (fhir_server/storage/sqlite_engine.py:149)",
)


@dataclass
class Profile:
    samples: int
    own: collections.Counter[str]
    inclusive: collections.Counter[str]


def read_raw(path: Path) -> Profile:
    """py-spy's ``--format raw`` output: one ``frame;frame;... count`` line per stack."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")[1:]  # the first is the thread's name
        if not frames or frames[-1].startswith(WAITING):
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return Profile(total, own, inclusive)


async def _drive(server: Server, scenario: str, *, seconds: float, concurrency: int) -> str:
    if scenario == "ORU^R01":
        run = f"P{uuid.uuid4().hex[:6]}-"
        result = await measure_hl7(
            server.mllp_port, connections=4, messages=int(seconds * 150), run=run
        )
        return f"{result['per_second']:,.0f} messages/s"
    makers = {
        "read": lambda i: ("GET", "/fhir/Patient/p1", b""),
        "create": lambda i: ("POST", "/fhir/Patient", orjson.dumps(_patient(i))),
        "transaction (10 entries)": lambda i: ("POST", "/fhir", _transaction(i)),
    }
    result = await run_load(
        "127.0.0.1",
        server.http_port,
        makers[scenario],
        concurrency=concurrency,
        max_requests=1_000_000,
        max_seconds=seconds,
        headers=server.auth,
    )
    return f"{result.rate:,.0f} requests/s, {result.errors} errors"


def _server_pid(server: Server) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"fhir_server.cli serve --workers 1 --port {server.http_port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(found.stdout.split()[0])


def _print(profile: Profile, top: int) -> None:
    def rows(counter: collections.Counter[str], *, own_code_only: bool) -> None:
        frames = [
            (frame, n)
            for frame, n in counter.most_common()
            if not own_code_only or any(part in frame for part in OWN_CODE)
        ]
        for frame, n in frames[:top]:
            print(f"  {n / profile.samples:6.1%}  {frame}")

    print(f"  {profile.samples} busy samples; by own time:")
    rows(profile.own, own_code_only=False)
    print("  including callees (our code):")
    rows(profile.inclusive, own_code_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    folder = Path(tempfile.mkdtemp(prefix="medicore-profile-"))
    with running(1, None) as server:
        pid = _server_pid(server)
        for scenario in ("read", "create", "transaction (10 entries)", "ORU^R01"):
            out = folder / f"{scenario.split()[0]}.txt"
            record = ["record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(out)]
            recorder = subprocess.Popen(
                [spy, *record, "--nonblocking", "-t", "-d", str(int(args.seconds))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            rate = asyncio.run(
                _drive(server, scenario, seconds=args.seconds, concurrency=args.concurrency)
            )
            recorder.wait(timeout=args.seconds + 60)
            print(f"\n{scenario}: {rate} under the profiler")
            _print(read_raw(out), args.top)
    print(f"\nraw profiles (py-spy --format raw): {folder}")


if __name__ == "__main__":
    main()
