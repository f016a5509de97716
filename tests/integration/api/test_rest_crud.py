"""Instance and type interactions through the ASGI app, on both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration.api.conftest import _client

FHIR = "application/fhir+json"


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.100", "value": "MRN-1"}],
        "name": [{"family": "Kim", "given": ["Minsu"]}],
        "gender": "male",
        **extra,
    }


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await client.post("/fhir/Patient", json=body, headers={"Content-Type": FHIR, **headers})


async def test_create_read_vread_with_version_headers(any_client: httpx.AsyncClient) -> None:
    created = await post(any_client, patient(id="ignored"))
    assert created.status_code == 201
    body = created.json()
    pid = body["id"]
    assert pid != "ignored" and body["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert created.headers["Last-Modified"].endswith("GMT")

    read = await any_client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200 and read.json() == body
    assert read.headers["content-type"].startswith(FHIR)
    vread = await any_client.get(f"/fhir/Patient/{pid}/_history/1")
    assert vread.json() == body
    assert (await any_client.get(f"/fhir/Patient/{pid}/_history/9")).status_code == 404
    assert (await any_client.get("/fhir/Patient/nope")).status_code == 404


async def test_update_if_match_and_lost_update_protection(any_client: httpx.AsyncClient) -> None:
    pid = (await post(any_client, patient())).json()["id"]
    changed = patient(id=pid, gender="female")
    first = await any_client.put(
        f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'}
    )
    assert first.status_code == 200 and first.json()["meta"]["versionId"] == "2"
    stale = await any_client.put(
        f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    history = (await any_client.get(f"/fhir/Patient/{pid}/_history")).json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    assert history["type"] == "history"


async def test_conditional_read_headers(any_client: httpx.AsyncClient) -> None:
    created = await post(any_client, patient())
    pid = created.json()["id"]
    same = await any_client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304 and same.content == b""
    other = await any_client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"0"'})
    assert other.status_code == 200
    later = "Tue, 01 Jan 2999 00:00:00 GMT"
    assert (
        await any_client.get(f"/fhir/Patient/{pid}", headers={"If-Modified-Since": later})
    ).status_code == 304
    earlier = "Tue, 01 Jan 2000 00:00:00 GMT"
    assert (
        await any_client.get(f"/fhir/Patient/{pid}", headers={"If-Modified-Since": earlier})
    ).status_code == 200


async def test_update_as_create_and_delete_tombstone(any_client: httpx.AsyncClient) -> None:
    made = await any_client.put("/fhir/Patient/client-1", json=patient(id="client-1"))
    assert made.status_code == 201 and made.json()["id"] == "client-1"
    deleted = await any_client.delete("/fhir/Patient/client-1")
    assert deleted.status_code == 204 and deleted.headers["ETag"] == 'W/"2"'
    gone = await any_client.get("/fhir/Patient/client-1")
    assert gone.status_code == 410
    assert (await any_client.get("/fhir/Patient/client-1/_history/1")).status_code == 200
    again = await any_client.delete("/fhir/Patient/client-1")
    assert again.status_code == 204
    history = (await any_client.get("/fhir/Patient/client-1/_history")).json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT"]
    revived = await any_client.put("/fhir/Patient/client-1", json=patient(id="client-1"))
    assert revived.status_code == 201 and revived.json()["meta"]["versionId"] == "3"


async def test_delete_with_stale_if_match_is_refused(any_client: httpx.AsyncClient) -> None:
    pid = (await post(any_client, patient())).json()["id"]
    refused = await any_client.delete(f"/fhir/Patient/{pid}", headers={"If-Match": 'W/"7"'})
    assert refused.status_code == 412
    assert (await any_client.get(f"/fhir/Patient/{pid}")).status_code == 200


async def test_prefer_return(any_client: httpx.AsyncClient) -> None:
    minimal = await post(any_client, patient(), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b"" and "Location" in minimal.headers
    outcome = await post(any_client, patient(), Prefer="return=OperationOutcome")
    assert outcome.json()["resourceType"] == "OperationOutcome"
    full = await post(any_client, patient(), Prefer="return=representation")
    assert full.json()["resourceType"] == "Patient"


async def test_patch_with_json_patch_and_if_match(any_client: httpx.AsyncClient) -> None:
    pid = (await post(any_client, patient())).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    headers = {"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'}
    patched = await any_client.patch(f"/fhir/Patient/{pid}", json=ops, headers=headers)
    assert patched.status_code == 200
    assert patched.json()["gender"] == "female" and patched.json()["meta"]["versionId"] == "2"
    stale = await any_client.patch(f"/fhir/Patient/{pid}", json=ops, headers=headers)
    assert stale.status_code == 412
    bad_value = [{"op": "replace", "path": "/gender", "value": "bogus-type-42"}]
    invalid = await any_client.patch(
        f"/fhir/Patient/{pid}",
        json=[{"op": "add", "path": "/birthDate", "value": "1-2-3"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert invalid.status_code == 400
    assert invalid.json()["issue"][0]["expression"] == ["Patient.birthDate"]
    wrong_media = await any_client.patch(f"/fhir/Patient/{pid}", json=bad_value)
    assert wrong_media.status_code == 415
    test_failed = await any_client.patch(
        f"/fhir/Patient/{pid}",
        json=[{"op": "test", "path": "/gender", "value": "male"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert test_failed.status_code == 422


async def test_type_and_system_history(any_client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await post(any_client, patient())
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    await any_client.post("/fhir/Observation", json=obs)
    page = (await any_client.get("/fhir/Patient/_history?_count=2")).json()
    assert len(page["entry"]) == 2
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = (await any_client.get(next_url.replace("http://test", ""))).json()
    assert len(rest["entry"]) == 1
    assert all(link["relation"] != "next" for link in rest["link"])
    system = (await any_client.get("/fhir/_history")).json()
    assert system["entry"][0]["resource"]["resourceType"] == "Observation"
    assert len(system["entry"]) == 4
    future = (await any_client.get("/fhir/_history?_since=2999-01-01T00:00:00Z")).json()
    assert future["entry"] == []


async def test_history_pages_follow_the_configured_page_size(tmp_path: Path) -> None:
    """``_count`` on history is bounded by MEDICORE_MAX_PAGE_SIZE, not a second constant."""
    async for c in _client("sqlite", tmp_path, max_page_size=1500):
        for n in range(1200):
            body = {"resourceType": "Patient", "id": f"h{n}"}
            assert (await c.put(f"/fhir/Patient/h{n}", json=body)).status_code == 201
        page = (await c.get("/fhir/Patient/_history?_count=5000")).json()
        assert len(page["entry"]) == 1200
