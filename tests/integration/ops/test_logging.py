"""JSON access lines with request ids; slow requests logged by query shape, no values."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from starlette.types import ASGIApp, Receive, Scope, Send

from tests.integration.ops.conftest import LogCapture, OpsApp, make_ops_app

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.410.100", "value": "MRN-445566"}],
    "name": [{"family": "Seo", "given": ["Yerin"]}],
    "birthDate": "1961-04-09",
}


async def test_request_id_is_accepted_returned_and_logged(ops: OpsApp, logs: LogCapture) -> None:
    given = await ops.client.get("/fhir/metadata", headers={"X-Request-Id": "lb-42.abc"})
    assert given.headers["x-request-id"] == "lb-42.abc"
    fresh = await ops.client.get("/fhir/metadata")
    generated = fresh.headers["x-request-id"]
    assert len(generated) == 32 and generated != "lb-42.abc"
    hostile = await ops.client.get("/fhir/metadata", headers={"X-Request-Id": "a\tb {x}"})
    assert hostile.headers["x-request-id"] not in ("a\tb {x}",)
    lines = [e for e in logs.entries() if e["event"] == "request"]
    assert [e["request_id"] for e in lines] == [
        "lb-42.abc",
        generated,
        hostile.headers["x-request-id"],
    ]
    first = lines[0]
    assert first["logger"] == "medicore.access"
    assert first["interaction"] == "capabilities"
    assert first["route"] == "/fhir/metadata"
    assert first["status"] == 200
    assert first["duration_ms"] >= 0


async def test_access_line_has_route_template_not_path(ops: OpsApp, logs: LogCapture) -> None:
    pid = (await ops.client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    await ops.client.get(f"/fhir/Patient/{pid}")
    read = next(e for e in logs.entries() if e.get("interaction") == "read")
    assert read["route"] == "/fhir/{resource_type}/{resource_id}"
    assert read["resource_type"] == "Patient"
    assert pid not in logs.text


class _FakeAuth:
    """Stands in for the auth middleware: sets ``request.state.principal``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["principal"] = SimpleNamespace(
                subject="Practitioner/dr-kang", client_id="emr-frontend"
            )
        await self.app(scope, receive, send)


async def test_user_and_client_from_the_principal(tmp_path: Path, logs: LogCapture) -> None:
    async for running in make_ops_app(tmp_path, disk_min_free_mb=1):
        running.app.add_middleware(_FakeAuth)  # inside ours, like the auth layer
        await running.client.get("/fhir/metadata")
    line = next(e for e in logs.entries() if e["event"] == "request")
    assert line["user"] == "Practitioner/dr-kang"
    assert line["client_id"] == "emr-frontend"


async def test_slow_requests_log_parameter_names_only(tmp_path: Path, logs: LogCapture) -> None:
    async for running in make_ops_app(tmp_path, slow_request_ms=0, disk_min_free_mb=1):
        await running.client.post("/fhir/Patient", json=PATIENT)
        await running.client.get(
            "/fhir/Patient", params={"family": "Seo", "birthdate": "1961-04-09", "_count": "5"}
        )
    slow = [e for e in logs.entries() if e["event"] == "slow_request"]
    search = next(e for e in slow if e["interaction"] == "search-type")
    assert search["level"] == "warning"
    assert search["route"] == "/fhir/{resource_type}"
    assert search["query_params"] == ["_count", "birthdate", "family"]
    assert search["threshold_ms"] == 0
    for secret in ("Seo", "Yerin", "1961-04-09", "MRN-445566"):
        assert secret not in logs.text
