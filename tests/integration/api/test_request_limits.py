"""The work one request may cost (issue #16): each limit refuses one step past it with an
OperationOutcome naming the element, audited like any refusal; one step short passes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import _client

LIMITS = {
    "max_body_bytes": 20_000,
    "max_bundle_entries": 3,
    "max_resource_elements": 60,
    "max_array_length": 8,
    "max_depth": 6,
    "max_query_params": 5,
    "max_query_bytes": 200,
}
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client("sqlite", tmp_path, **LIMITS):
        yield c


async def last_audit(client: httpx.AsyncClient) -> dict[str, Any]:
    store = client._transport.app.state.store  # type: ignore[attr-defined]
    events = [record.event() async for record in store.iter_audit()]
    return events[-1]


async def refused(response: httpx.Response, status: int, where: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["code"] == "too-costly"
    assert issue.get("expression") == ([where] if where else None)
    return dict(issue)


async def audited_refusal(client: httpx.AsyncClient, status: int) -> None:
    event = await last_audit(client)
    assert event["outcome"] == ("4" if status < 500 else "8")
    assert "too-costly" in event["outcomeDesc"]


def patient_with_names(count: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": f"F{i}"} for i in range(count)]}


def nested(depth: int) -> dict[str, Any]:
    """A Patient whose innermost object is ``depth - 1`` levels below the resource."""
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    levels = 3  # Patient, extension[], the innermost extension
    while levels < depth:
        extension = {"url": "http://example.org/x", "extension": [extension]}
        levels += 2
    return {"resourceType": "Patient", "extension": [extension]}


def transaction(count: int) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient_with_names(1), "request": {"method": "POST", "url": "Patient"}}
            for _ in range(count)
        ],
    }


async def test_bundle_entries(client: httpx.AsyncClient) -> None:
    assert (await client.post("/fhir", json=transaction(3))).status_code == 200
    await refused(await client.post("/fhir", json=transaction(4)), 413, "Bundle.entry")
    await audited_refusal(client, 413)


async def test_elements_of_one_resource(client: httpx.AsyncClient) -> None:
    # 5 keys, 8 names (2 each), 8 identifiers (3 each), 5 telecoms (3 each): 60.
    many = patient_with_names(8)
    many["identifier"] = [{"system": "urn:x", "value": str(i)} for i in range(8)]
    many["telecom"] = [{"system": "phone", "value": str(i)} for i in range(5)]
    many["active"] = True
    assert (await client.post("/fhir/Patient", json=many, headers=FHIR)).status_code == 201
    many["telecom"].append({"system": "phone", "value": "6"})
    await refused(await client.post("/fhir/Patient", json=many), 400, "Patient.telecom")
    await audited_refusal(client, 400)


async def test_array_length(client: httpx.AsyncClient) -> None:
    assert (await client.post("/fhir/Patient", json=patient_with_names(8))).status_code == 201
    answer = await client.post("/fhir/Patient", json=patient_with_names(9))
    await refused(answer, 400, "Patient.name")
    await audited_refusal(client, 400)


async def test_nesting_depth(client: httpx.AsyncClient) -> None:
    assert (await client.post("/fhir/Patient", json=nested(7))).status_code == 201
    answer = await client.post("/fhir/Patient", json=nested(9))
    await refused(answer, 400, "Patient.extension[0].extension[0].extension[0].extension")
    await audited_refusal(client, 400)


async def test_an_entry_is_named_by_its_place_in_the_bundle(client: httpx.AsyncClient) -> None:
    bundle = transaction(2)
    bundle["entry"][1]["resource"] = patient_with_names(9)
    answer = await client.post("/fhir", json=bundle)
    await refused(answer, 400, "Bundle.entry[1].resource.name")


async def test_validate_operation_bodies(client: httpx.AsyncClient) -> None:
    def parameters(names: int) -> dict[str, Any]:
        resource = patient_with_names(names)
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": resource}],
        }

    assert (await client.post("/fhir/Patient/$validate", json=parameters(8))).status_code == 200
    answer = await client.post("/fhir/Patient/$validate", json=parameters(9))
    await refused(answer, 400, "Parameters.parameter[0].resource.name")
    await audited_refusal(client, 400)


async def test_json_patch_bodies(client: httpx.AsyncClient) -> None:
    await client.put("/fhir/Patient/p", json={"resourceType": "Patient", "id": "p"})
    ops = [{"op": "add", "path": "/active", "value": True}] * 9
    answer = await client.patch(
        "/fhir/Patient/p", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    await refused(answer, 400, "patch")


async def test_search_parameters(client: httpx.AsyncClient) -> None:
    five = "/fhir/Patient?" + "&".join(f"family=a{i}" for i in range(5))
    assert (await client.get(five)).status_code == 200
    await refused(await client.get(five + "&given=b"), 400, "family")
    await audited_refusal(client, 400)
    long = "/fhir/Patient?family=" + "x" * 200
    await refused(await client.get(long), 414, None)
    await audited_refusal(client, 414)


async def test_search_form_bodies(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    ok = await client.post("/fhir/Patient/_search", content=b"family=" + b"x" * 150, headers=form)
    assert ok.status_code == 200
    body = b"family=" + b"x" * 200
    answer = await client.post("/fhir/Patient/_search", content=body, headers=form)
    await refused(answer, 413, None)


async def test_chunked_body_without_length_is_cut_off(client: httpx.AsyncClient) -> None:
    """No Content-Length: the body is refused while streaming, not read to its end."""
    sent: list[int] = []

    async def chunks(total: int) -> AsyncIterator[bytes]:
        yield b'{"resourceType": "Patient", "name": [{"family": "'
        for _ in range(total):
            sent.append(1)
            yield b"x" * 1000
        yield b'"}]}'

    small = await client.post("/fhir/Patient", content=chunks(15), headers=FHIR)
    assert small.status_code == 201
    sent.clear()
    answer = await client.post("/fhir/Patient", content=chunks(500), headers=FHIR)
    await refused(answer, 413, None)
    assert len(sent) < 30  # it stopped reading soon after 20 kB
    await audited_refusal(client, 413)


async def test_hl7_over_http_body(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "x-application/hl7-v2+er7"}
    answer = await client.post("/hl7/v2", content=b"MSH|" + b"x" * 25_000, headers=headers)
    await refused(answer, 413, None)
    await audited_refusal(client, 413)


async def test_writes_checked_in_a_worker_process_judge_as_the_server(tmp_path: Path) -> None:
    """``cpu_workers``: resources over ``offload_bytes`` go to a worker process, which must
    accept, refuse and index exactly as the server does."""
    async for c in _client("sqlite", tmp_path, cpu_workers=1, offload_bytes=200):
        big = patient_with_names(30)
        big["name"][7]["family"] = "Worker-Indexed"
        checks = c._transport.app.state.service.planner.checks  # type: ignore[attr-defined]
        assert not checks.running
        assert (await c.post("/fhir/Patient", json=big)).status_code == 201
        assert checks.running
        found = (await c.get("/fhir/Patient?family=Worker-Indexed")).json()
        assert found["total"] == 1
        bad = patient_with_names(30)
        bad["gender"] = "neither"
        answer = await c.post("/fhir/Patient", json=bad)
        assert answer.status_code == 400
        assert answer.json()["issue"][0]["expression"] == ["Patient.gender"]
        many = transaction(20)  # a large body: every entry is checked in the worker
        assert (await c.post("/fhir", json=many)).status_code == 200
