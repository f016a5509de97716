"""Start the real server (``medicore serve``, uvicorn) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def start_server(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None, auth: bool = False
) -> RunningServer:
    """``auth=False`` runs with MEDICORE_AUTH_REQUIRED=false (REST semantics tests)."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(port), *extra]
    if not any(arg.startswith("--store") for arg in extra):
        command += ["--store", f"sqlite:///{tmp_path / 'e2e.db'}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": str(Path.cwd()),
                "MEDICORE_AUTH_REQUIRED": "true" if auth else "false",
                "MEDICORE_MLLP_PORT": "0",  # parallel servers must not fight over 2575
                "MEDICORE_KEYS_DIR": str(tmp_path / "data" / "keys"),
                **(env or {}),
            },
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return RunningServer(process, base, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures the fault tests measured (README, Reliability), one line each."""
    from tests.e2e.fault_helpers import FIGURES

    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
