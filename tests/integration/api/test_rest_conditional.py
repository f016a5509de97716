"""Conditional create/update/delete, including parallel identical conditional creates."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

MRN = "urn:oid:1.2.410.200|H-77"


def patient(value: str = "H-77", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.200", "value": value}],
        "gender": "female",
        **extra,
    }


async def test_conditional_create(any_client: httpx.AsyncClient) -> None:
    headers = {"If-None-Exist": f"identifier={MRN}"}
    first = await any_client.post("/fhir/Patient", json=patient(), headers=headers)
    assert first.status_code == 201
    second = await any_client.post("/fhir/Patient", json=patient(), headers=headers)
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    await any_client.post("/fhir/Patient", json=patient())  # now two match
    third = await any_client.post("/fhir/Patient", json=patient(), headers=headers)
    assert third.status_code == 412


# Repeated: a race lost one time in six still fails this test with odds above 98%.
RACE_ROUNDS = 12


async def test_parallel_identical_conditional_creates_make_one(
    any_client: httpx.AsyncClient,
) -> None:
    for round_ in range(RACE_ROUNDS):
        mrn = f"RACE-1-{round_}"
        headers = {"If-None-Exist": f"identifier=urn:oid:1.2.410.200|{mrn}"}
        responses = await asyncio.gather(
            *(
                any_client.post("/fhir/Patient", json=patient(mrn), headers=headers)
                for _ in range(10)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 9 + [201], (round_, statuses)
        assert len({r.json()["id"] for r in responses}) == 1
        found = await any_client.get(
            f"/fhir/Patient?identifier=urn:oid:1.2.410.200|{mrn}&_total=accurate"
        )
        assert found.json()["total"] == 1, round_


async def test_conditional_update_creates_then_updates(any_client: httpx.AsyncClient) -> None:
    url = f"/fhir/Patient?identifier={MRN}"
    created = await any_client.put(url, json=patient())
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = await any_client.put(url, json=patient(gender="male"))
    assert updated.status_code == 200 and updated.json()["id"] == pid
    assert updated.json()["meta"]["versionId"] == "2"
    wrong_id = await any_client.put(url, json=patient(id="someone-else"))
    assert wrong_id.status_code == 400


async def test_parallel_conditional_updates_make_one(any_client: httpx.AsyncClient) -> None:
    for round_ in range(RACE_ROUNDS):
        mrn = f"RACE-2-{round_}"
        url = f"/fhir/Patient?identifier=urn:oid:1.2.410.200|{mrn}"
        responses = await asyncio.gather(
            *(any_client.put(url, json=patient(mrn)) for _ in range(6))
        )
        assert [r.status_code for r in responses].count(201) == 1, round_
        assert all(r.status_code in (200, 201) for r in responses), round_
        assert len({r.json()["id"] for r in responses}) == 1


async def test_conditional_delete(any_client: httpx.AsyncClient) -> None:
    pid = (await any_client.post("/fhir/Patient", json=patient())).json()["id"]
    deleted = await any_client.delete(f"/fhir/Patient?identifier={MRN}")
    assert deleted.status_code == 204
    assert (await any_client.get(f"/fhir/Patient/{pid}")).status_code == 410
    nothing = await any_client.delete(f"/fhir/Patient?identifier={MRN}")
    assert nothing.status_code == 204
    for _ in range(2):
        await any_client.post("/fhir/Patient", json=patient())
    assert (await any_client.delete(f"/fhir/Patient?identifier={MRN}")).status_code == 412


async def test_conditional_without_criteria_is_refused(any_client: httpx.AsyncClient) -> None:
    assert (await any_client.delete("/fhir/Patient")).status_code == 400
    assert (await any_client.put("/fhir/Patient", json=patient())).status_code == 400
