"""Helpers for the HL7 end-to-end tests: a server with an MLLP port, the operator CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import RunningServer, start_server


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(Path.cwd()),
        "MEDICORE_AUTH_REQUIRED": "false",
        "MEDICORE_KEYS_DIR": str(tmp_path / "data" / "keys"),
    }


def start_hl7_server(
    tmp_path: Path, mllp_port: int, *extra: str, env: dict[str, str] | None = None
) -> RunningServer:
    """``medicore serve --mllp-port N`` (on the test's SQLite file unless ``extra`` names a
    ``--store``); waits for MLLP too."""
    server = start_server(tmp_path, "--mllp-port", str(mllp_port), *extra, env=env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", mllp_port), timeout=1):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("the MLLP port did not open")


def medicore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``medicore ARGS`` (the operator CLI) against the test's store."""
    return subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
