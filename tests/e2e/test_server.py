"""The real server process: HTTP over a socket, durable writes, graceful shutdown."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.e2e.conftest import RunningServer, start_server

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.410.300", "value": "E2E-1"}],
    "name": [{"family": "김", "given": ["민수"]}],
}


def test_rest_round_trip_over_a_real_socket(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base, timeout=10) as http:
        meta = http.get("/fhir/metadata").json()
        assert meta["fhirVersion"] == "4.0.1"
        assert {r["type"] for r in meta["rest"][0]["resource"]} >= {"Patient", "Provenance"}
        created = http.post("/fhir/Patient", json=PATIENT)
        assert created.status_code == 201
        pid = created.json()["id"]
        assert http.get(f"/fhir/Patient/{pid}").json()["name"][0]["family"] == "김"
        assert http.get("/docs").status_code == 200
        assert http.get("/health/live").json()["status"] == "pass"


def test_data_survives_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    with httpx.Client(base_url=first.base, timeout=10) as http:
        pid = http.post("/fhir/Patient", json=PATIENT).json()["id"]
    # SIGKILL: no shutdown hook runs, so only what was durably committed survives.
    first.stop(signal.SIGKILL)
    second = start_server(tmp_path)
    try:
        with httpx.Client(base_url=second.base, timeout=10) as http:
            assert http.get(f"/fhir/Patient/{pid}").status_code == 200
    finally:
        # SIGTERM: uvicorn drains, runs the shutdown hooks, then re-raises the signal.
        assert second.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in second.log_path.read_text()
