"""Without transactions (a standalone MongoDB), what needs several changes at once is
refused rather than half-applied across a crash; on every other store it commits.

``.ci/run`` runs the MongoDB tests once against a replica set and once against a
standalone server; tests marked ``needs_transactions`` run in the first pass only, these
in both.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.hl7.messages import oru_r01

PATIENT = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "TX-1"}]}


def transactional(client: httpx.AsyncClient) -> bool:
    store = client._transport.app.state.service.store  # type: ignore[attr-defined]
    return bool(getattr(store, "transactions", True))


def transaction(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


async def test_a_transaction_bundle_commits_only_where_it_is_atomic(
    any_client: httpx.AsyncClient,
) -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    }
    answer = await any_client.post("/fhir", json=transaction(PATIENT, encounter))
    found = await any_client.get("/fhir/Patient?identifier=urn:mrn|TX-1&_total=accurate")
    if transactional(any_client):
        assert answer.status_code == 200, answer.text
        assert found.json()["total"] == 1
        return
    assert answer.status_code == 501, answer.text
    issue = answer.json()["issue"][0]
    assert issue["code"] == "not-supported" and "replica set" in issue["diagnostics"]
    assert found.json()["total"] == 0  # nothing half-applied


async def test_single_writes_and_one_entry_transactions_work_everywhere(
    any_client: httpx.AsyncClient,
) -> None:
    created = await any_client.post("/fhir/Patient", json=PATIENT)
    assert created.status_code == 201
    one = await any_client.post("/fhir", json=transaction({**PATIENT, "gender": "other"}))
    assert one.status_code == 200, one.text


async def test_an_hl7_message_is_kept_not_half_applied_without_transactions(
    any_client: httpx.AsyncClient,
) -> None:
    answer = await any_client.post(
        "/hl7/v2",
        content=oru_r01("TX-LAB1", "MRN-TX1"),
        headers={"Content-Type": "x-application/hl7-v2+er7"},
    )
    assert answer.status_code == 200
    msa = next(line for line in answer.text.split("\r") if line.startswith("MSA"))
    patients = await any_client.get("/fhir/Patient?identifier=MRN-TX1&_total=accurate")
    if transactional(any_client):
        assert msa.split("|")[1] == "AA"
        assert patients.json()["total"] == 1
        return
    assert msa.split("|")[1] == "AE"  # kept as a dead letter, to reprocess on a replica set
    assert patients.json()["total"] == 0
