"""``medicore audit verify/export/checkpoint`` against the file a real server wrote."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import start_server


def medicore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )


def test_verify_export_and_checkpoint(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=10) as http:
            for _ in range(4):
                pid = http.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
                http.get(f"/fhir/Patient/{pid}")
    finally:
        server.stop()
    store = f"sqlite:///{tmp_path / 'e2e.db'}"

    ok = medicore(tmp_path, "audit", "verify", "--store", store)
    assert ok.returncode == 0, ok.stderr
    assert "audit chain OK: 8 records" in ok.stdout

    point = medicore(tmp_path, "audit", "checkpoint", "--store", store, "--out", "cp.json")
    assert json.loads(point.stdout)["position"] == 8

    exported = medicore(
        tmp_path,
        "audit",
        "export",
        "--store",
        store,
        "--out",
        "audit.ndjson",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2999-01-01T00:00:00Z",
    )
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "audit.ndjson").read_text().splitlines()) == 8
    assert medicore(tmp_path, "audit", "verify-export", "audit.ndjson").returncode == 0

    conn = sqlite3.connect(tmp_path / "e2e.db", isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE position = 8")  # truncate the newest record
    conn.close()
    unnoticed = medicore(tmp_path, "audit", "verify", "--store", store)
    assert unnoticed.returncode == 0  # the chain alone cannot see a cut tail...
    caught = medicore(tmp_path, "audit", "verify", "--store", store, "--checkpoint", "cp.json")
    assert caught.returncode == 1  # ...a checkpoint kept elsewhere can
    assert "truncated" in caught.stdout
