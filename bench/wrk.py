"""Load from ``wrk`` (C, one thread) where the Python load generator would eat the cores.

On 2 cores the asyncio generator of ``loadgen`` takes a good part of one core at 2,000
requests/s, so it caps what a second server worker can show. ``wrk`` (Debian package
``wrk``) costs a small fraction of that. Same result type as ``loadgen``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.loadgen import LoadResult

# wrk calls done() once at the end; its summary is printed as one JSON line we parse.
_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{{"requests": %d, "micros": %d, "errors": %d, "p50": %d, "p99": %d}}\\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def run_wrk(
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    concurrency: int,
    seconds: float,
) -> LoadResult:
    """``concurrency`` keep-alive connections for ``seconds``; non-2xx/3xx count as errors."""
    all_headers = {"Content-Type": "application/fhir+json", **(headers or {})}
    script = _SCRIPT.format(
        method=_lua(method),
        body=_lua(body.decode()) if body else "nil",
        headers="\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in all_headers.items()),
    )
    with tempfile.TemporaryDirectory() as folder:
        script_path = Path(folder) / "load.lua"
        script_path.write_text(script)
        finished = subprocess.run(
            [
                "wrk",
                "--threads",
                "1",
                "--connections",
                str(concurrency),
                "--duration",
                f"{max(1, round(seconds))}s",
                "--script",
                str(script_path),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    # wrk keeps percentiles, not samples: the two it reports stand in for the list.
    return LoadResult(
        summary["requests"],
        summary["errors"],
        summary["micros"] / 1e6,
        latencies_ms=[],
        fixed_percentiles={0.5: summary["p50"] / 1000, 0.99: summary["p99"] / 1000},
    )
