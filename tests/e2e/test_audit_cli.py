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


def medicore(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path.cwd()), **(env or {})},
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


def test_commands_run_elsewhere_say_the_key_is_missing_and_create_none(tmp_path: Path) -> None:
    """From another directory the relative key locations point nowhere: a read-only
    command must say so (exit 2, naming the path and the setting), not seal a new key
    and report the real chain as broken at position 1."""
    server = start_server(tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=10) as http:
            http.post("/fhir/Patient", json={"resourceType": "Patient"})
    finally:
        server.stop()
    store = f"sqlite:///{tmp_path / 'e2e.db'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    expected = str(elsewhere / "data" / "keys" / "audit-hmac.key")

    for args in (("audit", "verify"), ("hl7", "reprocess", "--all")):
        run = medicore(elsewhere, *args, "--store", store)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert expected in run.stderr and "MEDICORE_DATA_DIR" in run.stderr, args
        assert "MEDICORE_AUDIT_KEY" in run.stderr and "BROKEN" not in run.stdout, args
    (elsewhere / "audit.ndjson").write_text("")
    run = medicore(elsewhere, "audit", "verify-export", "audit.ndjson")
    assert run.returncode == 2 and expected in run.stderr
    # reading the head needs no key, and makes none
    assert medicore(elsewhere, "audit", "checkpoint", "--store", store).returncode == 0
    # signing keys: a token signed by a new key would verify on no server
    run = medicore(elsewhere, "token", "--user", "x", "--scope", "user/*.rs", "--store", store)
    assert run.returncode == 1 and "MEDICORE_KEYS_DIR" in run.stderr
    assert str(elsewhere / "data" / "keys") in run.stderr
    assert not (elsewhere / "data").exists()  # no key material, no directory

    pointed = medicore(
        elsewhere,
        "audit",
        "verify",
        "--store",
        store,
        env={"MEDICORE_DATA_DIR": str(tmp_path / "data")},
    )
    assert pointed.returncode == 0, pointed.stderr
    assert "audit chain OK" in pointed.stdout
