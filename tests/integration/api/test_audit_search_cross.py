"""Searches that cross between AuditEvents and the other types, over HTTP on SQLite.

They pin down what must keep working when the AuditEvent search index moves to its own
file: includes both ways, chains both ways, multi-type system search with paging and
totals, date sort with paging, read/vread, and an include whose target is an AuditEvent.

No role may read both Patient and AuditEvent (the auditor reads AuditEvents only), so the
cross-type searches run on the app with authentication off; one test checks what the
auditor sees of the same include. The background indexer is slowed to once an hour, so an
AuditEvent is searchable only after a request has caught the index up: every expectation
below is exact, computed from the chain as it stood before the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import _client, bearer, mint

FAMILIES = ("Quillfeather", "Brackenridge", "Zyxwander")  # none a prefix of another
Key = tuple[str, str]  # (resourceType, id)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Authentication off; AuditEvents indexed only when a request catches the index up."""
    async for c in _client("sqlite", tmp_path, audit_index_interval=3600.0):
        yield c


@pytest.fixture
async def secured_app(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client("sqlite", tmp_path, auth_required=True, audit_index_interval=3600.0):
        yield c


async def seed(c: httpx.AsyncClient, headers: dict[str, str] | None = None) -> list[str]:
    """Three patients, the first two read once each: ids in FAMILIES order."""
    ids = []
    for family in FAMILIES:
        body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ann"]}]}
        created = await c.post("/fhir/Patient", json=body, headers=headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    for pid in ids[:2]:
        assert (await c.get(f"/fhir/Patient/{pid}", headers=headers)).status_code == 200
    return ids


async def chain(c: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every AuditEvent recorded so far, indexed or not, in chain order."""
    store = c._transport.app.state.store  # type: ignore[attr-defined]
    return [r.event() async for r in store.iter_audit()]


def refs(event: dict[str, Any]) -> set[str]:
    """The entity references of an event, without their ``/_history/<version>``."""
    return {
        e["what"]["reference"].split("/_history/")[0]
        for e in event.get("entity", [])
        if "reference" in e.get("what", {})
    }


async def naming(c: httpx.AsyncClient, ref: str) -> set[str]:
    return {e["id"] for e in await chain(c) if ref in refs(e)}


async def get(
    c: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    answer = await c.get(url, headers=headers)
    assert answer.status_code == 200, answer.text
    bundle: dict[str, Any] = answer.json()
    return bundle


def keys(bundle: dict[str, Any], mode: str) -> list[Key]:
    return [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


def ids(found: list[Key], rtype: str = "AuditEvent") -> set[str]:
    assert {t for t, _ in found} <= {rtype}
    return {i for _, i in found}


async def pages(c: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """The matched entries of every page, following ``next`` links to the end."""
    entries: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        bundle = await get(c, next_url)
        entries += [e for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        next_url = next((lk["url"] for lk in bundle["link"] if lk["relation"] == "next"), None)
    return entries


async def horizon(c: httpx.AsyncClient) -> str:
    """The instant of the last event so far: later requests' own events come after it."""
    return str((await chain(c))[-1]["recorded"])


async def test_include_patient_from_its_audit_events(app: httpx.AsyncClient) -> None:
    a, _, _ = await seed(app)
    expected = await naming(app, f"Patient/{a}")
    assert len(expected) == 2  # its create and its read
    bundle = await get(app, f"/fhir/AuditEvent?patient=Patient/{a}&_include=AuditEvent:patient")
    assert ids(keys(bundle, "match")) == expected and len(keys(bundle, "match")) == 2
    assert keys(bundle, "include") == [("Patient", a)]


async def test_auditor_gets_no_patient_through_an_include(secured_app: httpx.AsyncClient) -> None:
    c = secured_app
    a, _, _ = await seed(c, bearer(mint(c, role="doctor", scope="user/*.cruds")))
    auditor = bearer(mint(c, role="auditor", scope="user/AuditEvent.rs"))
    expected = await naming(c, f"Patient/{a}")
    url = f"/fhir/AuditEvent?patient=Patient/{a}&_include=AuditEvent:patient"
    bundle = await get(c, url, auditor)
    assert ids(keys(bundle, "match")) == expected and len(expected) == 2
    assert keys(bundle, "include") == []  # the auditor may not read Patients
    patients = await c.get(f"/fhir/Patient?_id={a}&_revinclude=AuditEvent:patient", headers=auditor)
    assert patients.status_code == 403


async def test_revinclude_audit_events_on_a_patient(app: httpx.AsyncClient) -> None:
    a, _, _ = await seed(app)
    expected = await naming(app, f"Patient/{a}")
    # Not indexed yet: a search that includes AuditEvents catches the index up first.
    bundle = await get(app, f"/fhir/Patient?_id={a}&_revinclude=AuditEvent:patient")
    assert keys(bundle, "match") == [("Patient", a)]
    included = keys(bundle, "include")
    assert ids(included) == expected and len(included) == len(expected) == 2


async def test_chain_from_audit_events_to_the_patient_name(app: httpx.AsyncClient) -> None:
    a, b, _ = await seed(app)
    for pid, family in ((a, FAMILIES[0]), (b, FAMILIES[1])):
        expected = await naming(app, f"Patient/{pid}")
        bundle = await get(app, f"/fhir/AuditEvent?patient.name={family}")
        assert ids(keys(bundle, "match")) == expected
        assert len(keys(bundle, "match")) == len(expected)
    assert keys(await get(app, "/fhir/AuditEvent?patient.name=Nobody"), "match") == []


async def test_reverse_chain_finds_the_patients_that_were_read(app: httpx.AsyncClient) -> None:
    a, b, c = await seed(app)
    assert {e["subtype"][0]["code"] for e in await chain(app)} == {"create", "read"}
    read = await get(app, "/fhir/Patient?_has:AuditEvent:patient:subtype=read")
    assert sorted(ids(keys(read, "match"), "Patient")) == sorted([a, b])
    created = await get(app, "/fhir/Patient?_has:AuditEvent:patient:action=C")
    assert sorted(ids(keys(created, "match"), "Patient")) == sorted([a, b, c])


async def test_system_search_over_both_types_pages_to_the_same_set(
    app: httpx.AsyncClient,
) -> None:
    patients = await seed(app)
    until = await horizon(app)
    expected = {("Patient", p) for p in patients} | {
        ("AuditEvent", e["id"]) for e in await chain(app)
    }
    assert len(expected) == 3 + 5
    url = f"/fhir?_type=AuditEvent,Patient&_lastUpdated=le{until}"
    entries = await pages(app, f"{url}&_count=2")
    found = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries]
    assert len(found) == len(set(found)) and set(found) == expected
    assert len(await chain(app)) > len(expected)  # the searches left events, filtered out
    counted = await get(app, f"{url}&_summary=count")
    assert counted["total"] == len(expected) and "entry" not in counted
    accurate = await get(app, f"{url}&_count=2&_total=accurate")
    assert accurate["total"] == len(expected) and len(keys(accurate, "match")) == 2


async def test_date_sort_pages_in_order_without_duplicates(app: httpx.AsyncClient) -> None:
    await seed(app)
    until = await horizon(app)
    url = f"/fhir/AuditEvent?date=le{until}&_sort=-date"
    whole = [e["resource"] for e in (await get(app, f"{url}&_count=1000"))["entry"]]
    paged = [e["resource"] for e in await pages(app, f"{url}&_count=2")]
    recorded = [r["recorded"] for r in paged]
    assert recorded == sorted(recorded, reverse=True)
    assert len(paged) == len({r["id"] for r in paged}) == 5
    assert {r["id"] for r in paged} == {r["id"] for r in whole}
    assert [r["recorded"] for r in whole] == recorded


async def test_read_and_vread_an_audit_event_not_yet_indexed(app: httpx.AsyncClient) -> None:
    await seed(app)
    event = (await chain(app))[0]
    vread = await app.get(f"/fhir/AuditEvent/{event['id']}/_history/1")
    assert vread.status_code == 200
    read = await app.get(f"/fhir/AuditEvent/{event['id']}")
    assert read.status_code == 200
    for answer in (vread, read):
        body = answer.json()
        assert {k: v for k, v in body.items() if k != "meta"} == event
        assert body["meta"]["versionId"] == "1" and answer.headers["ETag"] == 'W/"1"'
    assert (await app.get(f"/fhir/AuditEvent/{event['id']}/_history/2")).status_code == 404


async def test_include_an_audit_event_through_entity(app: httpx.AsyncClient) -> None:
    patients = await seed(app)
    target = (await chain(app))[0]["id"]  # the first Patient's create
    assert (await app.get(f"/fhir/AuditEvent/{target}")).status_code == 200
    reading = (await chain(app))[-1]
    assert reading["subtype"][0]["code"] == "read"
    # It names the event read, and the patient that event is about.
    assert refs(reading) == {f"AuditEvent/{target}", f"Patient/{patients[0]}"}
    url = f"/fhir/AuditEvent?entity=AuditEvent/{target}&_include=AuditEvent:entity"
    bundle = await get(app, url)
    assert keys(bundle, "match") == [("AuditEvent", reading["id"])]
    # entity follows every reference of the match: the event read and its patient.
    assert sorted(keys(bundle, "include")) == [("AuditEvent", target), ("Patient", patients[0])]
    only = await get(app, f"{url}:AuditEvent")
    assert keys(only, "match") == [("AuditEvent", reading["id"])]
    assert keys(only, "include") == [("AuditEvent", target)]


async def test_system_search_over_both_types_sorts_and_pages_both_ways(
    app: httpx.AsyncClient,
) -> None:
    """Pages of the two files are merged by the sort values, then by rid: newest first
    across types, the same order forwards and backwards."""
    await seed(app)
    until = await horizon(app)
    url = f"/fhir?_type=AuditEvent,Patient&_lastUpdated=le{until}&_sort=-_lastUpdated"
    whole = [e["resource"] for e in (await get(app, f"{url}&_count=100"))["entry"]]
    stamps = [r["meta"]["lastUpdated"][:23] for r in whole]  # sorted to the millisecond
    assert len(whole) == 8 and stamps == sorted(stamps, reverse=True)
    assert {r["resourceType"] for r in whole[:4]} == {"AuditEvent", "Patient"}  # interleaved
    forward, page = [], await get(app, f"{url}&_count=3")
    while True:
        forward.append(page)
        following = [lk["url"] for lk in page["link"] if lk["relation"] == "next"]
        if not following:
            break
        page = await get(app, following[0])
    backward = [page]
    while previous := [lk["url"] for lk in page["link"] if lk["relation"] == "previous"]:
        page = await get(app, previous[0])
        backward.insert(0, page)
    for walked in (forward, backward):
        found = [e["resource"]["id"] for p in walked for e in p["entry"]]
        assert found == [r["id"] for r in whole]


async def test_conditional_criteria_cannot_use_audit_events(app: httpx.AsyncClient) -> None:
    """The audit trail is no precondition for a write: a clear 400 naming the parameter."""
    await seed(app)
    body = {"resourceType": "Patient", "name": [{"family": "Conditional"}]}
    headers = {"If-None-Exist": "_has:AuditEvent:patient:action=R"}
    answer = await app.post("/fhir/Patient", json=body, headers=headers)
    assert answer.status_code == 400
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["_has"]
    assert "AuditEvent" in outcome["issue"][0]["diagnostics"]
    chained = await app.put("/fhir/Patient?_has:AuditEvent:patient:outcome=0", json=body)
    assert chained.status_code == 400


async def test_conditional_untyped_chain_leaves_audit_events_out(app: httpx.AsyncClient) -> None:
    """``target`` may point at any type, AuditEvent included; the condition still works on
    the others instead of being refused for a type the client never named."""
    patient = (await seed(app))[0]
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Patient/{patient}"}],
        "recorded": "2026-11-26T10:00:00Z",
        "agent": [{"who": {"display": "registration system"}}],
    }
    headers = {"If-None-Exist": f"target._id={patient}"}
    first = await app.post("/fhir/Provenance", json=provenance, headers=headers)
    assert first.status_code == 201, first.text
    again = await app.post("/fhir/Provenance", json=provenance, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    explicit = {"If-None-Exist": f"target:AuditEvent._id={patient}"}
    refused = await app.post("/fhir/Provenance", json=provenance, headers=explicit)
    assert refused.status_code == 400
