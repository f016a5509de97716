"""Every interaction leaves the AuditEvent it should, committed before the answer."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from audit.chain import verify
from tests.conftest import AUDIT_KEY
from tests.integration.api.conftest import mint

PATIENT = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "A-1"}]}


async def audit_events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """All AuditEvents so far, in the order they were recorded (reading them is itself
    audited, afterwards).

    The API search must return exactly the chained events. The chain's order is its
    commit order (on SQLite, reads' events are chained from the journal after the writes
    that followed them), so the order is the events' own ``recorded`` time.
    """
    bundle = (await client.get("/fhir/AuditEvent?_count=1000&_sort=date")).json()
    found = {e["resource"]["id"]: e["resource"] for e in bundle.get("entry", [])}
    store = client._transport.app.state.store  # type: ignore[attr-defined]
    chained = {r.event()["id"]: r.recorded async for r in store.iter_audit()}
    assert set(found) <= set(chained)
    return sorted(found.values(), key=lambda event: chained[event["id"]])


def subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def data_entity(event: dict[str, Any]) -> str | None:
    for entity in event.get("entity", []):
        if entity.get("role", {}).get("code") == "4":
            return str(entity["what"]["reference"])
    return None


def patient_entities(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e.get("role", {}).get("code") == "1"
    ]


async def test_each_interaction_leaves_its_event(any_client: httpx.AsyncClient) -> None:
    c = any_client
    pid = (await c.post("/fhir/Patient", json=PATIENT)).json()["id"]
    obs = {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {"text": "pulse"},
        "subject": {"reference": f"Patient/{pid}"},
    }
    oid = (await c.post("/fhir/Observation", json=obs)).json()["id"]
    await c.get(f"/fhir/Observation/{oid}")
    await c.get(f"/fhir/Observation/{oid}/_history/1")
    await c.put(f"/fhir/Observation/{oid}", json={**obs, "id": oid, "status": "registered"})
    patch = [{"op": "replace", "path": "/status", "value": "preliminary"}]
    await c.patch(
        f"/fhir/Observation/{oid}",
        json=patch,
        headers={"Content-Type": "application/json-patch+json"},
    )
    await c.get(f"/fhir/Observation?subject=Patient/{pid}")
    await c.get(f"/fhir/Observation/{oid}/_history")
    await c.get("/fhir/Observation/_history")
    await c.get("/fhir/_history")
    await c.delete(f"/fhir/Observation/{oid}")
    await c.get("/fhir/Observation/nope")  # failure: 404
    await c.put(f"/fhir/Patient/{pid}", json={**PATIENT, "id": pid}, headers={"If-Match": 'W/"9"'})

    events = await audit_events(c)
    summary = [(subtype(e), e["action"], e["outcome"], data_entity(e)) for e in events]
    assert summary == [
        ("create", "C", "0", f"Patient/{pid}/_history/1"),
        ("create", "C", "0", f"Observation/{oid}/_history/1"),
        ("read", "R", "0", f"Observation/{oid}/_history/1"),
        ("vread", "R", "0", f"Observation/{oid}/_history/1"),
        ("update", "U", "0", f"Observation/{oid}/_history/2"),
        ("patch", "U", "0", f"Observation/{oid}/_history/3"),
        ("search", "E", "0", None),
        ("history-instance", "R", "0", None),
        ("history-type", "R", "0", None),
        ("history-system", "R", "0", None),
        ("delete", "D", "0", f"Observation/{oid}/_history/4"),
        ("read", "R", "4", "Observation/nope"),
        ("update", "U", "4", f"Patient/{pid}"),
    ]
    # The patient is named on every event about their data.
    assert all(patient_entities(e) == [f"Patient/{pid}"] for e in events[:11])
    search = events[6]
    query = next(e["query"] for e in search["entity"] if "query" in e)
    assert base64.b64decode(query).decode() == f"GET /fhir/Observation?subject=Patient/{pid}"
    assert all(e["agent"][0]["requestor"] is True for e in events)
    assert any(a.get("network", {}).get("address") for a in events[0]["agent"])


@pytest.mark.needs_transactions
async def test_transaction_and_batch_entries_are_audited_one_by_one(
    any_client: httpx.AsyncClient,
) -> None:
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {"resource": PATIENT, "request": {"method": "PUT", "url": "Patient/t2"}},
        ],
    }
    tx["entry"][1]["resource"] = {**PATIENT, "id": "t2"}
    assert (await any_client.post("/fhir", json=tx)).status_code == 200
    batch = {**tx, "type": "batch", "entry": [{"request": {"method": "GET", "url": "Patient/t2"}}]}
    assert (await any_client.post("/fhir", json=batch)).status_code == 200
    kinds = [subtype(e) for e in await audit_events(any_client)]
    assert kinds == ["create", "update", "transaction", "read", "batch"]


async def test_audit_events_cannot_be_written_and_reading_them_is_audited(
    any_client: httpx.AsyncClient,
) -> None:
    await any_client.post("/fhir/Patient", json=PATIENT)
    first = await audit_events(any_client)
    assert (await any_client.post("/fhir/AuditEvent", json=first[0])).status_code == 405
    event_id = first[0]["id"]
    assert (await any_client.delete(f"/fhir/AuditEvent/{event_id}")).status_code == 405
    read = await any_client.get(f"/fhir/AuditEvent/{event_id}")
    assert read.status_code == 200 and read.json()["id"] == event_id
    later = await audit_events(any_client)
    kinds = [(subtype(e), e["outcome"]) for e in later]
    assert kinds == [
        ("create", "0"),
        ("search", "0"),  # the first audit_events() call
        ("create", "4"),  # refused with 405
        ("delete", "4"),
        ("read", "0"),
    ]


async def test_the_chain_verifies(any_client: httpx.AsyncClient) -> None:
    for _ in range(5):
        await any_client.post("/fhir/Patient", json=PATIENT)
    store = any_client._transport.app.state.store  # type: ignore[attr-defined]
    records = [r async for r in store.iter_audit()]
    assert [r.position for r in records] == [1, 2, 3, 4, 5]
    assert verify(records, key=AUDIT_KEY).ok


async def test_audit_writes_and_mllp_connections_are_measured(client: httpx.AsyncClient) -> None:
    pid = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    await client.get(f"/fhir/Patient/{pid}")  # its AuditEvent goes through the group commit
    text = (await client.get("/metrics")).text
    count = next(
        line
        for line in text.splitlines()
        if line.startswith("medicore_audit_write_duration_seconds_count")
    )
    assert float(count.split()[-1]) >= 1
    assert "medicore_mllp_active_connections 0.0" in text  # no listener in this test app


async def test_refused_requests_for_hl7_dead_letters_are_audited(
    secured: httpx.AsyncClient,
) -> None:
    """Dead letters hold raw messages with patient data: a refusal there is an access
    attempt like any other, and leaves its AuditEvent."""
    nurse = {"Authorization": f"Bearer {mint(secured, role='nurse', scope='user/*.rs')}"}
    store = secured._transport.app.state.store  # type: ignore[attr-defined]
    before = [r async for r in store.iter_audit()]
    assert (await secured.get("/hl7/v2/failed")).status_code == 401
    assert (await secured.get("/hl7/v2/failed/X|Y|Z", headers=nurse)).status_code == 403
    events = [r.event() async for r in store.iter_audit()][len(before) :]
    assert [(e["outcome"], e["outcomeDesc"].split(":")[0]) for e in events] == [
        ("4", "denied"),
        ("4", "denied"),
    ]
    assert "nurse" in str(events[1]["agent"])
