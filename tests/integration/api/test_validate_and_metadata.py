"""$validate and the CapabilityStatement generated from what is registered."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.api.conftest import _client, bearer, mint
from tests.nickname_parameter import nickname_folder

LAB = "https://medicore.example.org/fhir/StructureDefinition/medicore-lab-observation"


async def test_validate_lists_every_issue_without_storing(client: httpx.AsyncClient) -> None:
    bad = {"resourceType": "Patient", "gender": "bogus", "birthDate": "1-2-3"}
    answer = await client.post("/fhir/Patient/$validate", json=bad)
    assert answer.status_code == 200
    expressions = {e for i in answer.json()["issue"] for e in i.get("expression", [])}
    assert {"Patient.gender", "Patient.birthDate"} <= expressions
    good = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", "gender": "male"}},
            {"name": "mode", "valueCode": "create"},
        ],
    }
    ok = (await client.post("/fhir/Patient/$validate", json=good)).json()
    assert all(i["severity"] in ("information", "warning") for i in ok["issue"])
    assert (await client.get("/fhir/Patient/_history")).json()["entry"] == []


async def test_validate_against_a_profile_and_for_delete(client: httpx.AsyncClient) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "glucose"}}
    answer = (await client.post(f"/fhir/Observation/$validate?profile={LAB}", json=obs)).json()
    errors = [i for i in answer["issue"] if i["severity"] == "error"]
    assert errors and any("Observation.subject" in i.get("expression", []) for i in errors)
    oid = (await client.post("/fhir/Observation", json=obs)).json()["id"]
    delete = (await client.post(f"/fhir/Observation/{oid}/$validate?mode=delete")).json()
    assert delete["issue"][0]["severity"] == "error" and delete["issue"][0]["code"] == "conflict"


async def test_validate_for_delete_reads_as_a_read_does(secured: httpx.AsyncClient) -> None:
    """A patient-scoped caller learns nothing about another patient's records through
    mode=delete: the same 404 as a read, and the lookup is audited as one."""
    doctor = bearer(mint(secured, role="doctor", scope="user/*.cruds"))
    theirs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "glucose"},
        "subject": {"reference": "Patient/other"},
    }
    created = await secured.post("/fhir/Observation", json=theirs, headers=doctor)
    oid = created.json()["id"]
    patient_app = bearer(mint(secured, role="doctor", scope="patient/*.rs", patient="me"))
    refused = await secured.post(
        f"/fhir/Observation/{oid}/$validate?mode=delete", headers=patient_app
    )
    assert refused.status_code == 404
    allowed = await secured.post(f"/fhir/Observation/{oid}/$validate?mode=delete", headers=doctor)
    assert allowed.status_code == 200
    store = secured._transport.app.state.store  # type: ignore[attr-defined]
    recorded = [json.loads(r.event_json) async for r in store.iter_audit()]
    subtypes = [e["subtype"][0]["code"] for e in recorded[-2:]]
    assert subtypes == ["read", "operation"]


async def test_capability_statement(secured: httpx.AsyncClient) -> None:
    meta = (await secured.get("/fhir/metadata")).json()
    assert meta["fhirVersion"] == "4.0.1" and meta["format"] == [
        "application/fhir+json",
        "application/json",
    ]
    rest = meta["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(by_type) == {
        "Patient",
        "Encounter",
        "MedicationRequest",
        "Observation",
        "Provenance",
        "AuditEvent",
    }
    audit_codes = {i["code"] for i in by_type["AuditEvent"]["interaction"]}
    assert "create" not in audit_codes and "search-type" in audit_codes
    params = {p["name"]: p for p in by_type["Observation"]["searchParam"]}
    assert params["code"]["type"] == "token" and params["code"]["definition"].startswith(
        "http://hl7.org/fhir/SearchParameter/"
    )
    assert "_text" not in params and "_content" not in params
    assert LAB in by_type["Observation"]["supportedProfile"]
    oauth = rest["security"]["extension"][0]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    # And the declared interactions really work: a doctor creates and searches.
    doctor = bearer(mint(secured, role="doctor", scope="user/*.cruds"))
    assert (
        await secured.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=doctor)
    ).status_code == 201


async def test_a_mandatory_profile_is_enforced_on_writes(tmp_path: Path) -> None:
    patient_profile = "https://medicore.example.org/fhir/StructureDefinition/medicore-patient"
    async for c in _client("sqlite", tmp_path, mandatory_profiles={"Patient": patient_profile}):
        refused = await c.post("/fhir/Patient", json={"resourceType": "Patient"})
        assert refused.status_code == 400
        assert any(
            "Patient.identifier" in i.get("expression", [""])[0] for i in refused.json()["issue"]
        )
        mrn = {"system": "urn:medicore:mrn", "value": "0001"}
        ok = await c.post("/fhir/Patient", json={"resourceType": "Patient", "identifier": [mrn]})
        assert ok.status_code == 201, ok.text


async def test_a_custom_search_parameter_file_is_searchable(tmp_path: Path) -> None:
    folder = nickname_folder(tmp_path)
    async for c in _client("sqlite", tmp_path, search_parameters_dirs=[str(folder)]):
        names = [{"use": "nickname", "given": ["Bongsu"]}, {"family": "Kim"}]
        await c.post("/fhir/Patient", json={"resourceType": "Patient", "name": names})
        await c.post(
            "/fhir/Patient", json={"resourceType": "Patient", "name": [{"given": ["Bongsu"]}]}
        )
        found = (await c.get("/fhir/Patient?nickname=bong")).json()
        assert [e["resource"]["name"][0]["use"] for e in found["entry"]] == ["nickname"]
        meta = (await c.get("/fhir/metadata")).json()
        patient = next(r for r in meta["rest"][0]["resource"] if r["type"] == "Patient")
        assert "nickname" in {p["name"] for p in patient["searchParam"]}


async def test_capability_statement_is_built_once_per_base_and_the_cache_is_bounded(
    secured: httpx.AsyncClient,
) -> None:
    urls = []
    for n in range(12):  # more Hosts than the cache keeps: each still gets its own base
        meta = (await secured.get("/fhir/metadata", headers={"host": f"h{n}.example"})).json()
        urls.append(meta["implementation"]["url"])
    assert urls == [f"http://h{n}.example/fhir" for n in range(12)]
    first = (await secured.get("/fhir/metadata", headers={"host": "h11.example"})).content
    again = (await secured.get("/fhir/metadata", headers={"host": "h11.example"})).content
    assert first == again  # served from the cache: the same bytes, date included
    app = secured._transport.app  # type: ignore[attr-defined]
    assert len(app.state.capability_cache) <= 8
