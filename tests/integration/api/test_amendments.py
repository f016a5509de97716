"""A signed (final) record is corrected only with a Provenance; the original stays."""

from __future__ import annotations

import json

import httpx

from tests.integration.api.conftest import bearer, mint

OBS = {
    "resourceType": "Observation",
    "status": "preliminary",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 95, "unit": "mg/dL"},
}


def provenance(*, reason: bool = True, who: str = "doctor-user") -> str:
    body: dict[str, object] = {
        "resourceType": "Provenance",
        "target": [{"reference": "Observation/ignored"}],
        "recorded": "2026-11-26T10:00:00Z",
        "agent": [{"who": {"identifier": {"system": "urn:staff", "value": who}}}],
    }
    if reason:
        body["reason"] = [{"text": "transcription error"}]
    return json.dumps(body)


async def test_amendment_flow(secured: httpx.AsyncClient) -> None:
    doctor = bearer(mint(secured, role="doctor", scope="user/*.cruds"))
    oid = (await secured.post("/fhir/Observation", json=OBS, headers=doctor)).json()["id"]
    final = {**OBS, "id": oid, "status": "final"}
    assert (
        await secured.put(f"/fhir/Observation/{oid}", json=final, headers=doctor)
    ).status_code == 200

    corrected = {**final, "status": "corrected", "valueQuantity": {"value": 59, "unit": "mg/dL"}}
    plain = await secured.put(f"/fhir/Observation/{oid}", json=corrected, headers=doctor)
    assert plain.status_code == 409
    assert "X-Provenance" in plain.json()["issue"][0]["diagnostics"]
    assert (await secured.delete(f"/fhir/Observation/{oid}", headers=doctor)).status_code == 409

    no_reason = {**doctor, "X-Provenance": provenance(reason=False)}
    refused = await secured.put(f"/fhir/Observation/{oid}", json=corrected, headers=no_reason)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Provenance.reason"]
    someone_else = {**doctor, "X-Provenance": provenance(who="nurse-user")}
    assert (
        await secured.put(f"/fhir/Observation/{oid}", json=corrected, headers=someone_else)
    ).status_code == 422
    still_final = {**doctor, "X-Provenance": provenance()}
    wrong_status = await secured.put(
        f"/fhir/Observation/{oid}",
        json=final | {"valueQuantity": {"value": 1}},
        headers=still_final,
    )
    assert wrong_status.status_code == 422

    amended = await secured.put(
        f"/fhir/Observation/{oid}", json=corrected, headers={**doctor, "X-Provenance": provenance()}
    )
    assert amended.status_code == 200, amended.text
    assert amended.json()["meta"]["versionId"] == "3"
    original = (await secured.get(f"/fhir/Observation/{oid}/_history/2", headers=doctor)).json()
    assert original["valueQuantity"]["value"] == 95 and original["status"] == "final"

    found = (
        await secured.get(
            f"/fhir/Observation?_id={oid}&_revinclude=Provenance:target", headers=doctor
        )
    ).json()
    included = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert [p["target"][0]["reference"] for p in included] == [f"Observation/{oid}/_history/3"]
    assert included[0]["reason"][0]["text"] == "transcription error"
    by_target = (
        await secured.get(f"/fhir/Provenance?target=Observation/{oid}", headers=doctor)
    ).json()
    assert len(by_target["entry"]) == 1

    prov_id = included[0]["id"]
    prov_body = {**included[0], "reason": [{"text": "changed my mind"}]}
    assert (
        await secured.put(f"/fhir/Provenance/{prov_id}", json=prov_body, headers=doctor)
    ).status_code == 409
    assert (await secured.delete(f"/fhir/Provenance/{prov_id}", headers=doctor)).status_code == 409

    auditor = bearer(mint(secured, role="auditor", scope="user/AuditEvent.rs"))
    events = (
        await secured.get(f"/fhir/AuditEvent?entity=Observation/{oid}&_count=100", headers=auditor)
    ).json()
    outcomes = sorted(
        (e["resource"]["subtype"][0]["code"], e["resource"]["outcome"]) for e in events["entry"]
    )
    assert ("update", "4") in outcomes and ("delete", "4") in outcomes
    assert outcomes.count(("update", "0")) == 2  # finalized, then amended
