"""batch and transaction Bundles posted to the base URL."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest


def entry(method: str, url: str, resource: Any = None, **request: str) -> dict[str, Any]:
    item: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        item["resource"] = resource
    return item


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


PATIENT = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "T1"}]}


@pytest.mark.needs_transactions
async def test_transaction_resolves_placeholders(any_client: httpx.AsyncClient) -> None:
    patient_entry = entry("POST", "Patient", PATIENT, ifNoneExist="identifier=urn:mrn|T1")
    patient_entry["fullUrl"] = "urn:uuid:5e3c2c3e-0f0e-4c54-9ad0-6a1b5c1f0a11"
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "urn:uuid:5e3c2c3e-0f0e-4c54-9ad0-6a1b5c1f0a11"},
    }
    tx = bundle("transaction", entry("POST", "Encounter", encounter), patient_entry)
    response = await any_client.post("/fhir", json=tx)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    enc_resp, pat_resp = result["entry"]  # same order as the request
    assert enc_resp["response"]["status"] == "201 Created"
    patient_id = pat_resp["resource"]["id"]
    assert enc_resp["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert pat_resp["response"]["location"] == f"Patient/{patient_id}/_history/1"

    again = (await any_client.post("/fhir", json=tx)).json()
    assert again["entry"][1]["response"]["status"] == "200 OK"
    assert again["entry"][1]["resource"]["id"] == patient_id
    assert again["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"


@pytest.mark.needs_transactions
async def test_a_conditional_put_with_a_non_string_id_is_referenced_where_it_lands(
    any_client: httpx.AsyncClient,
) -> None:
    """The id a conditional update creates with is decided once: references that point at
    its fullUrl name the resource that was really stored."""
    placeholder = "urn:uuid:0b7a1c2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d"
    put = entry("PUT", "Patient?identifier=urn:mrn|NUM5", {**PATIENT, "id": 5})
    put["fullUrl"] = placeholder
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": placeholder},
    }
    tx = bundle("transaction", put, entry("POST", "Observation", observation))
    response = await any_client.post("/fhir", json=tx)
    assert response.status_code == 200, response.text
    patient_resp, observation_resp = response.json()["entry"]
    patient_id = patient_resp["resource"]["id"]
    assert patient_id != "5"
    assert observation_resp["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert (await any_client.get(f"/fhir/Patient/{patient_id}")).status_code == 200


async def test_transaction_is_all_or_nothing(any_client: httpx.AsyncClient) -> None:
    good = entry("POST", "Patient", PATIENT)
    bad = entry("POST", "Observation", {"resourceType": "Observation", "code": {"text": "x"}})
    response = await any_client.post("/fhir", json=bundle("transaction", good, bad))
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Observation.status"]
    assert "entry 1" in issue["diagnostics"]
    history = (await any_client.get("/fhir/_history")).json()
    assert history["entry"] == []


@pytest.mark.needs_transactions
async def test_transaction_order_delete_before_create(any_client: httpx.AsyncClient) -> None:
    await any_client.put("/fhir/Patient/old", json={**PATIENT, "id": "old"})
    tx = bundle(
        "transaction",
        entry("GET", "Patient/old"),
        entry("PUT", "Patient/new", {**PATIENT, "id": "new"}),
        entry("DELETE", "Patient/old"),
    )
    result = (await any_client.post("/fhir", json=tx)).json()
    statuses = [e["response"]["status"] for e in result["entry"]]
    # GET runs last, after the DELETE in the same transaction.
    assert statuses == ["410 Gone", "201 Created", "204 No Content"]
    assert (await any_client.get("/fhir/Patient/old")).status_code == 410


async def test_transaction_patch_and_if_match(any_client: httpx.AsyncClient) -> None:
    await any_client.put("/fhir/Patient/p", json={**PATIENT, "id": "p"})
    patch = [{"op": "add", "path": "/gender", "value": "other"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(patch)).decode(),
    }
    tx = bundle("transaction", entry("PATCH", "Patient/p", binary, ifMatch='W/"1"'))
    result = (await any_client.post("/fhir", json=tx)).json()
    assert result["entry"][0]["resource"]["gender"] == "other"
    stale = await any_client.post("/fhir", json=tx)
    assert stale.status_code == 412


async def test_batch_entries_succeed_or_fail_alone(any_client: httpx.AsyncClient) -> None:
    batch = bundle(
        "batch",
        entry("POST", "Patient", PATIENT),
        entry("GET", "Patient/missing"),
        entry("POST", "Observation", {"resourceType": "Observation"}),
        entry("PUT", "Patient/b1", {**PATIENT, "id": "b1"}),
    )
    result = (await any_client.post("/fhir", json=batch)).json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "404 Not Found", "400 Bad Request", "201 Created"]
    outcome = result["entry"][2]["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"


async def test_entry_urls_must_be_valid(any_client: httpx.AsyncClient) -> None:
    broken = bundle("transaction", {"request": {"method": "BREW", "url": "Patient"}})
    response = await any_client.post("/fhir", json=broken)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].request.method"]


@pytest.mark.needs_transactions
async def test_conditional_patch_entry(any_client: httpx.AsyncClient) -> None:
    order = {
        "resourceType": "MedicationRequest",
        "identifier": [{"system": "urn:placer", "value": "ORD-1"}],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "amoxicillin"},
        "subject": {"reference": "Patient/x"},
    }
    await any_client.post("/fhir/MedicationRequest", json=order)
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(patch)).decode(),
    }
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": "urn:uuid:7b0f4f5e-1c55-4a8e-9a51-3c1d2f9e0b01"}],
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"display": "pharmacy"}}],
    }
    cancel = {
        "request": {"method": "PATCH", "url": "MedicationRequest?identifier=urn:placer|ORD-1"}
    }
    cancel["resource"] = binary
    cancel["fullUrl"] = "urn:uuid:7b0f4f5e-1c55-4a8e-9a51-3c1d2f9e0b01"
    tx = bundle("transaction", cancel, entry("POST", "Provenance", provenance))
    result = await any_client.post("/fhir", json=tx)
    assert result.status_code == 200, result.text
    patched, prov = (e["resource"] for e in result.json()["entry"])
    assert patched["status"] == "cancelled" and patched["meta"]["versionId"] == "2"
    assert prov["target"][0]["reference"] == f"MedicationRequest/{patched['id']}/_history/2"
    missing = bundle(
        "transaction",
        {
            **cancel,
            "request": {"method": "PATCH", "url": "MedicationRequest?identifier=urn:placer|NONE"},
        },
    )
    assert (await any_client.post("/fhir", json=missing)).status_code == 404


async def test_a_patch_entry_may_not_change_type_or_id(any_client: httpx.AsyncClient) -> None:
    await any_client.put("/fhir/Patient/p9", json={**PATIENT, "id": "p9"})
    for patch in (
        [{"op": "replace", "path": "/resourceType", "value": "Observation"}],
        [{"op": "replace", "path": "/id", "value": "other"}],
    ):
        binary = {
            "resourceType": "Binary",
            "contentType": "application/json-patch+json",
            "data": base64.b64encode(orjson.dumps(patch)).decode(),
        }
        tx = bundle("transaction", entry("PATCH", "Patient/p9", binary))
        assert (await any_client.post("/fhir", json=tx)).status_code == 422
    assert (await any_client.get("/fhir/Observation/p9")).status_code == 404
    assert (await any_client.get("/fhir/Patient/p9")).json()["meta"]["versionId"] == "1"
