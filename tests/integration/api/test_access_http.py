"""Role x resource type x interaction through the HTTP API, and patient-context scopes.

The expected allow/deny table is the hand-typed one of the unit matrix (from issue 5's
prose), so the HTTP layer is held to the same rules as ``auth.decision``.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conftest import bearer, mint
from tests.unit.auth.test_auth_role_matrix import STAFF, TYPES

SAMPLES: dict[str, dict[str, Any]] = {
    "Patient": {"resourceType": "Patient", "gender": "female"},
    "Encounter": {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
    },
    "MedicationRequest": {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "amoxicillin"},
        "subject": {"reference": "Patient/p1"},
    },
    "Observation": {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {"text": "pulse"},
        "subject": {"reference": "Patient/p1"},
    },
    "Provenance": {
        "resourceType": "Provenance",
        "target": [{"reference": "Patient/p1"}],
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"display": "ward"}}],
    },
}
ORDER = ("create", "read", "vread", "history-instance", "update", "patch", "search",
         "history-type", "history-system", "conditional-create", "conditional-update",
         "system-search", "has", "conditional-delete", "delete")  # fmt: skip
# The letters each interaction needs on its type; conditional ones search first.
NEEDS = {
    "vread": "r", "history-instance": "r", "patch": "u", "history-type": "s",
    "history-system": "s", "conditional-create": "cs", "conditional-update": "us",
    "conditional-delete": "ds", "system-search": "s", "has": "s",
}  # fmt: skip
# _has:<type>:<reference parameter to Patient>:_id=...
HAS_PARAM = {
    "Patient": "link",
    "Encounter": "subject",
    "MedicationRequest": "subject",
    "Observation": "subject",
    "Provenance": "target",
    "AuditEvent": "patient",
}


async def seed(client: httpx.AsyncClient, doctor: str) -> dict[str, str]:
    """One resource of each writable type (ids by type), plus Patient/p1 they point at."""
    headers = bearer(doctor)
    await client.put("/fhir/Patient/p1", json={**SAMPLES["Patient"], "id": "p1"}, headers=headers)
    ids = {}
    for rtype, body in SAMPLES.items():
        created = await client.post(f"/fhir/{rtype}", json=body, headers=headers)
        assert created.status_code == 201, created.text
        ids[rtype] = created.json()["id"]
    return ids


async def attempt(
    client: httpx.AsyncClient, token: str, rtype: str, rid: str, interaction: str
) -> tuple[bool, int]:
    """Perform one interaction; (was it allowed, HTTP status)."""
    h = bearer(token)
    body = {**SAMPLES.get(rtype, {"resourceType": rtype}), "id": rid}
    if interaction == "create":
        r = await client.post(
            f"/fhir/{rtype}", json={k: v for k, v in body.items() if k != "id"}, headers=h
        )
    elif interaction == "read":
        r = await client.get(f"/fhir/{rtype}/{rid}", headers=h)
    elif interaction == "vread":
        r = await client.get(f"/fhir/{rtype}/{rid}/_history/1", headers=h)
    elif interaction == "history-instance":
        r = await client.get(f"/fhir/{rtype}/{rid}/_history", headers=h)
    elif interaction == "update":
        r = await client.put(f"/fhir/{rtype}/{rid}", json=body, headers=h)
    elif interaction == "patch":
        ops = [{"op": "test", "path": "/id", "value": rid}]
        r = await client.patch(
            f"/fhir/{rtype}/{rid}",
            json=ops,
            headers={**h, "Content-Type": "application/json-patch+json"},
        )
    elif interaction == "search":
        r = await client.get(f"/fhir/{rtype}", headers=h)
    elif interaction == "history-type":
        r = await client.get(f"/fhir/{rtype}/_history", headers=h)
    elif interaction == "conditional-create":
        create = {k: v for k, v in body.items() if k != "id"}
        r = await client.post(
            f"/fhir/{rtype}", json=create, headers={**h, "If-None-Exist": f"_id={rid}"}
        )
    elif interaction == "conditional-update":
        r = await client.put(f"/fhir/{rtype}?_id={rid}", json=body, headers=h)
    elif interaction == "conditional-delete":
        r = await client.delete(f"/fhir/{rtype}?_id={rid}", headers=h)
    elif interaction == "system-search":
        r = await client.get(f"/fhir?_type={rtype}&_id={rid}", headers=h)
        found = [e["resource"]["id"] for e in r.json().get("entry", [])]
        return r.status_code == 200 and found == [rid], r.status_code
    elif interaction == "has":
        r = await client.get(f"/fhir/Patient?_has:{rtype}:{HAS_PARAM[rtype]}:_id={rid}", headers=h)
        if r.status_code >= 400:
            assert r.json()["resourceType"] == "OperationOutcome"
        return r.status_code == 200, r.status_code
    elif interaction == "history-system":
        r = await client.get("/fhir/_history", headers=h)
        kinds = {
            e["resource"]["resourceType"] for e in r.json().get("entry", []) if "resource" in e
        }
        return r.status_code == 200 and rtype in kinds, r.status_code
    else:
        r = await client.delete(f"/fhir/{rtype}/{rid}", headers=h)
    if r.status_code >= 400:
        assert r.json()["resourceType"] == "OperationOutcome"
    # 409: access was granted, then a business rule refused it (e.g. Provenance is final).
    assert r.status_code < 300 or r.status_code in (403, 405, 409), r.text
    return r.status_code < 300 or r.status_code == 409, r.status_code


async def test_every_role_type_and_interaction(secured: httpx.AsyncClient) -> None:
    doctor = mint(secured, role="doctor", scope="user/*.cruds")
    mismatches = []
    for role, letters in STAFF.items():
        token = mint(secured, role=role, scope="user/*.cruds")
        ids = await seed(secured, doctor)
        event = (
            await secured.get(
                "/fhir/AuditEvent?_count=1",
                headers=bearer(mint(secured, role="auditor", scope="user/AuditEvent.rs")),
            )
        ).json()
        ids["AuditEvent"] = event["entry"][0]["resource"]["id"]
        for rtype, allowed in zip(TYPES, letters, strict=True):
            for interaction in ORDER:
                needs = NEEDS.get(interaction, interaction[0])
                # _has is a search of Patient that reads rtype too
                needs_patient = interaction != "has" or "s" in letters[0]
                # AuditEvents have no versions, so no history: auditors search them; and
                # they are written by the server only.
                expected = (
                    all(letter in allowed for letter in needs)
                    and needs_patient
                    and (rtype, interaction) != ("AuditEvent", "history-system")
                    and not (rtype == "AuditEvent" and interaction.startswith("conditional"))
                )
                got, status = await attempt(secured, token, rtype, ids[rtype], interaction)
                if got != expected:
                    mismatches.append((role, rtype, interaction, expected, status))
    assert mismatches == []


async def test_no_or_bad_token_is_401_with_a_challenge(secured: httpx.AsyncClient) -> None:
    missing = await secured.get("/fhir/Patient")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["resourceType"] == "OperationOutcome"
    forged = await secured.get("/fhir/Patient", headers=bearer("eyJhbGciOiJub25lIn0.e30."))
    assert forged.status_code == 401
    public = await secured.get("/fhir/metadata")
    assert public.status_code == 200


async def test_insufficient_scope_names_the_missing_scope(secured: httpx.AsyncClient) -> None:
    token = mint(secured, role="doctor", scope="user/Patient.rs")
    refused = await secured.post(
        "/fhir/Observation", json=SAMPLES["Observation"], headers=bearer(token)
    )
    assert refused.status_code == 403
    assert "Observation.c" in refused.json()["issue"][0]["diagnostics"]


async def test_patient_scopes_stay_in_the_compartment(secured: httpx.AsyncClient) -> None:
    doctor = bearer(mint(secured, role="doctor", scope="user/*.cruds"))
    for pid in ("p1", "p2"):
        await secured.put(
            f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers=doctor
        )
        for _ in range(2):
            obs = {**SAMPLES["Observation"], "subject": {"reference": f"Patient/{pid}"}}
            await secured.post("/fhir/Observation", json=obs, headers=doctor)
    other = (await secured.get("/fhir/Observation?subject=Patient/p2", headers=doctor)).json()
    other_id = other["entry"][0]["resource"]["id"]

    app_token = bearer(mint(secured, role="doctor", scope="patient/*.rs", patient="p1"))
    found = (await secured.get("/fhir/Observation", headers=app_token)).json()
    subjects = {
        e["resource"]["subject"]["reference"]
        for e in found["entry"]
        if e["search"]["mode"] == "match"
    }
    assert subjects == {"Patient/p1"} and len(found["entry"]) == 2
    # Outside the compartment reads like a missing id: existence is not revealed.
    assert (
        await secured.get(f"/fhir/Observation/{other_id}", headers=app_token)
    ).status_code == 404
    assert (await secured.get("/fhir/Patient/p2", headers=app_token)).status_code == 404
    assert (await secured.get("/fhir/Patient/p1", headers=app_token)).status_code == 200
    patients = (await secured.get("/fhir/Patient", headers=app_token)).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == ["p1"]


async def test_denials_are_audited(secured: httpx.AsyncClient) -> None:
    nurse = bearer(mint(secured, role="nurse", scope="user/*.cruds"))
    refused = await secured.post(
        "/fhir/MedicationRequest", json=SAMPLES["MedicationRequest"], headers=nurse
    )
    assert refused.status_code == 403
    await secured.get("/fhir/Patient")  # no token
    auditor = bearer(mint(secured, role="auditor", scope="user/AuditEvent.rs"))
    events = (await secured.get("/fhir/AuditEvent?outcome=4", headers=auditor)).json()
    descs = sorted(e["resource"]["outcomeDesc"] for e in events["entry"])
    assert len(descs) == 2 and all(d.startswith("denied: ") for d in descs)
    nurse_event = next(
        e["resource"]
        for e in events["entry"]
        if any(
            a.get("who", {}).get("identifier", {}).get("value") == "nurse-user"
            for a in e["resource"]["agent"]
        )
    )
    assert nurse_event["subtype"][0]["code"] == "create"
