"""A real uvicorn with observability installed: no PHI in any log line, metrics, health-check.sh.

The server runs the way ``medicore serve`` will once the lead wires
``install_observability`` (same app factory, uvicorn's own access log off, since it
prints raw paths with query strings).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

LAUNCHER = """
import sys, uvicorn
from fhir_server.app import create_app
from fhir_server.audit_setup import load_audit_key
from fhir_server.observability import MeteredStore, Metrics, install_observability
from fhir_server.settings import Settings
from fhir_server.storage import store_from_uri
settings = Settings()
metrics = Metrics()
inner = store_from_uri(settings.store, audit_key=load_audit_key(settings))
app = create_app(settings, store=MeteredStore(inner, metrics=metrics))
install_observability(app, settings, metrics=metrics)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="info",
            timeout_graceful_shutdown=30)
"""

PATIENTS = [
    {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.100.1", "value": "MRN-90817263"}],
        "name": [{"family": "Baekhyun", "given": ["Sunwoo"]}],
        "birthDate": "1958-11-03",
        "telecom": [{"system": "phone", "value": "010-5555-0199"}],
    },
    {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.100.1", "value": "MRN-55443322"}],
        "name": [{"family": "Namgoong", "given": ["Haeun"]}],
        "birthDate": "1990-02-17",
    },
]
SECRETS = [
    "MRN-90817263",
    "90817263",
    "Baekhyun",
    "Sunwoo",
    "1958-11-03",
    "010-5555-0199",
    "MRN-55443322",
    "Namgoong",
    "Haeun",
    "1990-02-17",
]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path


def start(tmp_path: Path, *, auth: bool) -> Server:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**server_env(tmp_path), "MEDICORE_AUTH_REQUIRED": str(auth).lower()},
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return Server(process, base, log)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server not ready:\n{log.read_text()}")
        time.sleep(0.1)


def server_env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDICORE_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "MEDICORE_STORE": f"sqlite:///{tmp_path / 'data' / 'e2e.db'}",
        "MEDICORE_DATA_DIR": str(tmp_path / "data"),
        "MEDICORE_KEYS_DIR": str(tmp_path / "data" / "keys"),
        "MEDICORE_BASE_URL": "http://medicore.test/fhir",
        "MEDICORE_SLOW_REQUEST_MS": "0",  # every request also logs its query shape
        "MEDICORE_DISK_MIN_FREE_MB": "1",
        "MEDICORE_MLLP_PORT": "0",
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start(tmp_path, auth=False)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.terminate()
        running.process.wait(timeout=30)


def _traffic(http: httpx.Client) -> list[str]:
    """A clinical day in miniature, PHI in bodies, query strings and headers."""
    ids: list[str] = []
    for patient in PATIENTS:
        created = http.post("/fhir/Patient", json=patient)
        assert created.status_code == 201
        ids.append(created.json()["id"])
    pid = ids[0]
    assert http.get(f"/fhir/Patient/{pid}").status_code == 200
    assert http.get("/fhir/Patient", params={"family": "Baekhyun"}).status_code == 200
    assert http.get("/fhir/Patient", params={"identifier": "MRN-55443322"}).status_code == 200
    assert http.get("/fhir/Patient", params={"birthdate": "1958-11-03"}).status_code == 200
    updated = {**PATIENTS[0], "id": pid, "name": [{"family": "Baekhyun", "given": ["Sunwoo", "J"]}]}
    assert http.put(f"/fhir/Patient/{pid}", json=updated).status_code == 200
    conditional = http.post(
        "/fhir/Patient",
        json=PATIENTS[1],
        headers={"If-None-Exist": "identifier=urn:oid:1.2.410.100.1|MRN-55443322"},
    )
    assert conditional.status_code in (200, 201)
    # Bad input quoting PHI: the error goes back to the client, never into the log.
    bad = {**PATIENTS[0], "birthDate": "Baekhyun-1958-11-03"}
    assert http.post("/fhir/Patient", json=bad).status_code in (400, 422)
    assert http.get("/fhir/Patient/MRN-90817263").status_code == 404
    assert http.get(f"/fhir/Patient/{pid}/_history").status_code == 200
    return ids


def test_logs_of_a_real_run_carry_no_patient_data(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=10) as http:
        ids = _traffic(http)
        traced = http.get(f"/fhir/Patient/{ids[1]}", headers={"X-Request-Id": "trace-e2e-1"})
        assert traced.headers["x-request-id"] == "trace-e2e-1"
    server.process.terminate()
    server.process.wait(timeout=30)
    text = server.log.read_text()
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == [], f"PHI in the server log: {leaked}"

    entries = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [e for e in entries if e["event"] == "request"]
    assert len(requests) >= 11
    assert all(len(e["request_id"]) >= 8 for e in requests)
    assert {"create", "read", "search-type", "update", "history-instance"} <= {
        e["interaction"] for e in requests
    }
    traced_line = next(e for e in requests if e["request_id"] == "trace-e2e-1")
    assert traced_line["route"] == "/fhir/{resource_type}/{resource_id}"
    shapes = [e["query_params"] for e in entries if e["event"] == "slow_request"]
    assert ["family"] in shapes and ["identifier"] in shapes and ["birthdate"] in shapes
    # uvicorn's own access line (raw path and query string) is off.
    assert "GET /fhir/Patient?" not in text


def test_metrics_and_health_check_script_against_the_server(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.base, timeout=10) as http:
        _traffic(http)
        metrics = http.get("/metrics").text
    assert (
        'medicore_http_requests_total{interaction="create",resource_type="Patient",status="201"}'
        in metrics
    )
    assert "medicore_store_operation_duration_seconds_bucket" in metrics
    assert "medicore_hl7_dead_letter_depth 0.0" in metrics
    for secret in SECRETS:
        assert secret not in metrics

    env = {**os.environ, "MEDICORE_URL": server.base, "MEDICORE_HC_DISK_PATH": str(tmp_path)}
    script = str(ROOT / "ops" / "health-check.sh")
    ok = subprocess.run(["bash", script], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"OK {server.base}: ready,disk ")
    assert "dead letters 0" in ok.stdout

    alerts = tmp_path / "alerts.txt"
    strict = {
        **env,
        "MEDICORE_HC_DISK_MIN_FREE_PCT": "101",
        "MEDICORE_ALERT_COMMAND": f"cat >> {alerts}",
    }
    failed = subprocess.run(
        ["bash", script], capture_output=True, text=True, env=strict, timeout=60
    )
    assert failed.returncode == 1
    assert "threshold 101%" in alerts.read_text()
    assert "disk-full.md" in alerts.read_text()


def test_with_auth_on_the_log_names_user_and_client_only(tmp_path: Path) -> None:
    env = server_env(tmp_path)

    def cli(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "fhir_server.cli", *args],
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("users", "add", "dr.ops", "--role", "doctor", "--password-stdin", stdin="a long pw 1\n")
    cli("keys", "rotate")  # signing keys come from `serve` or `keys rotate`, never `token`
    token = cli("token", "--user", "dr.ops", "--scope", "user/*.cruds").strip().splitlines()[-1]
    running = start(tmp_path, auth=True)
    try:
        with httpx.Client(base_url=running.base, timeout=10) as http:
            assert http.post("/fhir/Patient", json=PATIENTS[0]).status_code == 401
            authed = {"Authorization": f"Bearer {token}"}
            created = http.post("/fhir/Patient", json=PATIENTS[0], headers=authed)
            assert created.status_code == 201, created.text
            found = http.get("/fhir/Patient", params={"family": "Baekhyun"}, headers=authed)
            assert found.status_code == 200
    finally:
        running.process.terminate()
        running.process.wait(timeout=30)
    text = running.log.read_text()
    assert [s for s in SECRETS if s in text] == []
    assert token not in text
    requests = [
        e
        for e in map(orjson.loads, (x for x in text.splitlines() if x.startswith("{")))
        if e["event"] == "request" and e["route"].startswith("/fhir")
    ]
    assert [(e["status"], e.get("user")) for e in requests] == [
        (401, None),
        (201, "dr.ops"),
        (200, "dr.ops"),
    ]
    assert requests[1]["client_id"]
