"""``_summary`` and ``_elements`` on read, vread, history and batch GET entries (issue #16):
they shape the answer exactly as on search (the same parser and shaping), SUBSETTED-tagged,
and the other parameters follow the server's strictness rules (``Prefer: handling``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.test_audit_trail import audit_events, patient_entities

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">p</div>'},
    "identifier": [{"system": "urn:mrn", "value": "A-1"}],
    "name": [{"family": "Rivera", "given": ["Ana"]}],
    "gender": "female",
    "birthDate": "1980-02-03",
    "maritalStatus": {"text": "married"},
    "contact": [{"name": {"family": "Rivera"}}],
}
OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"text": "pulse"},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 72, "unit": "/min"},
    "note": [{"text": "after exercise"}],
}
SUBSETS = [
    "_elements=name",
    "_elements=name,birthDate",
    "_elements=id",
    "_summary=true",
    "_summary=text",
    "_summary=data",
    "_summary=false",
    "_summary=true&_elements=gender",
]


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await client.put("/fhir/Patient/p1", json=PATIENT)).status_code == 201
    assert (await client.put("/fhir/Observation/o1", json=OBSERVATION)).status_code == 201
    changed = {**PATIENT, "gender": "other"}
    assert (await client.put("/fhir/Patient/p1", json=changed)).status_code == 200
    return client


async def _searched(client: httpx.AsyncClient, resource_type: str, rid: str, q: str) -> Any:
    bundle = (await client.get(f"/fhir/{resource_type}?_id={rid}&{q}")).json()
    return bundle["entry"][0]["resource"]


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


@pytest.mark.parametrize("q", SUBSETS)
async def test_read_shapes_as_search_does(seeded: httpx.AsyncClient, q: str) -> None:
    read = await seeded.get(f"/fhir/Patient/p1?{q}")
    assert read.status_code == 200, read.text
    assert read.json() == await _searched(seeded, "Patient", "p1", q)
    assert read.headers["ETag"] == 'W/"2"'


async def test_elements_keep_what_was_asked_and_tag_it(seeded: httpx.AsyncClient) -> None:
    read = (await seeded.get("/fhir/Patient/p1?_elements=name")).json()
    assert set(read) == {"resourceType", "id", "meta", "name"}
    assert read["name"] == PATIENT["name"]
    assert SUBSETTED in read["meta"]["tag"]
    # Observation.status and .code are mandatory: kept whatever is asked
    obs = (await seeded.get("/fhir/Observation/o1?_elements=subject")).json()
    assert set(obs) == {"resourceType", "id", "meta", "status", "code", "subject"}
    summary = (await seeded.get("/fhir/Patient/p1?_summary=true")).json()
    assert "contact" not in summary and "maritalStatus" not in summary and "name" in summary
    assert SUBSETTED in summary["meta"]["tag"]


async def test_without_subsetting_the_stored_resource_is_returned(
    seeded: httpx.AsyncClient,
) -> None:
    for q in ("", "?_summary=false", "?_format=json", "?_pretty=true"):
        read = (await seeded.get(f"/fhir/Patient/p1{q}")).json()
        assert _without_meta(read) == {**PATIENT, "gender": "other"}, q
        assert "tag" not in read["meta"]


@pytest.mark.parametrize("q", SUBSETS)
async def test_vread_shapes_as_search_does(seeded: httpx.AsyncClient, q: str) -> None:
    old = (await seeded.get(f"/fhir/Patient/p1/_history/1?{q}")).json()
    current = await _searched(seeded, "Patient", "p1", q)
    assert _without_meta(old) == {
        **_without_meta(current),
        **({"gender": "female"} if "gender" in current else {}),
    }
    assert old["meta"]["versionId"] == "1"
    assert (SUBSETTED in old["meta"].get("tag", [])) == (
        SUBSETTED in current["meta"].get("tag", [])
    )


@pytest.mark.parametrize(
    "url",
    ["/fhir/Patient/p1", "/fhir/Patient/p1/_history/1", "/fhir/Patient/p1/_history"],
)
async def test_summary_count_outside_a_search_is_a_400(seeded: httpx.AsyncClient, url: str) -> None:
    answer = await seeded.get(f"{url}?_summary=count")
    assert answer.status_code == 400
    issue = answer.json()["issue"][0]
    assert issue["expression"] == ["_summary"] and "count" in issue["diagnostics"]


async def test_invalid_values_are_refused_as_on_search(seeded: httpx.AsyncClient) -> None:
    searched = await seeded.get("/fhir/Patient?_summary=maybe")
    read = await seeded.get("/fhir/Patient/p1?_summary=maybe")
    assert searched.status_code == read.status_code == 400
    assert read.json()["issue"][0]["expression"] == ["_summary"]


async def test_other_parameters_follow_prefer_handling(seeded: httpx.AsyncClient) -> None:
    lenient = await seeded.get("/fhir/Patient/p1?name=x&_count=3")
    assert lenient.status_code == 200 and lenient.json()["name"] == PATIENT["name"]
    strict = {"Prefer": "handling=strict"}
    for url in ("/fhir/Patient/p1?name=x", "/fhir/Patient/p1/_history/1?name=x"):
        refused = await seeded.get(url, headers=strict)
        assert refused.status_code == 400, url
        assert refused.json()["issue"][0]["expression"] == ["name"]
    refused = await seeded.get("/fhir/Patient/p1/_history?_at=2020", headers=strict)
    assert refused.status_code == 400 and refused.json()["issue"][0]["expression"] == ["_at"]
    # what each interaction does take is accepted under strict handling
    ok = await seeded.get("/fhir/Patient/p1?_elements=name&_format=json", headers=strict)
    assert ok.status_code == 200
    ok = await seeded.get("/fhir/Patient/p1/_history?_count=1&_summary=true", headers=strict)
    assert ok.status_code == 200


async def test_history_entries_are_subsetted_and_pages_keep_it(
    seeded: httpx.AsyncClient,
) -> None:
    bundle = (await seeded.get("/fhir/Patient/p1/_history?_elements=gender&_count=1")).json()
    [entry] = bundle["entry"]
    assert set(entry["resource"]) == {"resourceType", "id", "meta", "gender"}
    assert SUBSETTED in entry["resource"]["meta"]["tag"]
    following = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert "_elements=gender" in following
    second = (await seeded.get("/fhir" + following.split("/fhir", 1)[1])).json()
    assert set(second["entry"][0]["resource"]) == {"resourceType", "id", "meta", "gender"}
    typed = (await seeded.get("/fhir/Observation/_history?_summary=true")).json()
    assert all(SUBSETTED in e["resource"]["meta"]["tag"] for e in typed["entry"])
    assert all("note" not in e["resource"] for e in typed["entry"])


async def test_batch_get_entries_are_subsetted(seeded: httpx.AsyncClient) -> None:
    urls = [
        "Patient/p1?_elements=name",
        "Patient/p1/_history/1?_summary=true",
        "Patient/p1/_history?_elements=gender",
        "Patient/p1?_summary=count",
    ]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
    }
    entries = (await seeded.post("/fhir", json=batch)).json()["entry"]
    assert entries[0]["resource"] == (await seeded.get("/fhir/Patient/p1?_elements=name")).json()
    assert SUBSETTED in entries[1]["resource"]["meta"]["tag"]
    assert "contact" not in entries[1]["resource"]
    history = entries[2]["resource"]["entry"]
    assert all(set(e["resource"]) == {"resourceType", "id", "meta", "gender"} for e in history)
    assert entries[3]["response"]["status"].startswith("400")


async def test_the_audit_names_the_patient_whatever_the_subset(
    seeded: httpx.AsyncClient,
) -> None:
    before = len(await audit_events(seeded))
    await seeded.get("/fhir/Observation/o1?_elements=status")
    await seeded.get("/fhir/Observation?_id=o1&_elements=status")
    await seeded.get("/fhir/Observation/o1/_history?_elements=status")
    events = (await audit_events(seeded))[before + 1 :]  # after the listing's own event
    assert [e["subtype"][0]["code"] for e in events] == ["read", "search", "history-instance"]
    assert all(patient_entities(e) == ["Patient/p1"] for e in events)
