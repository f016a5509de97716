"""Bad input gets a 4xx OperationOutcome naming the element; never a 500 or PHI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhir_server.storage.base import StoreUnavailable

FHIR = {"Content-Type": "application/fhir+json"}


def assert_outcome(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] in ("error", "fatal")
    return body


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/fhir/Patient", content=b'{"resourceType": "Pat', headers=FHIR)
    assert_outcome(response, 400)


async def test_invalid_resource_names_each_element_without_echoing_values(
    client: httpx.AsyncClient,
) -> None:
    secret = "Hong-Gildong-1975"
    body = {"resourceType": "Patient", "birthDate": secret, "name": [{"given": secret}]}
    outcome = assert_outcome(await client.post("/fhir/Patient", json=body, headers=FHIR), 400)
    expressions = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    assert {"Patient.birthDate", "Patient.name[0].given"} <= expressions
    assert secret not in str(outcome)


async def test_missing_required_element(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Observation", "code": {"text": "x"}}
    outcome = assert_outcome(await client.post("/fhir/Observation", json=body), 400)
    assert outcome["issue"][0]["expression"] == ["Observation.status"]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("POST", "/fhir/Patient", {"resourceType": "Observation"}, 400),  # wrong type for URL
        ("PUT", "/fhir/Patient/a", {"resourceType": "Patient", "id": "b"}, 400),  # id mismatch
        ("PUT", "/fhir/Patient/a", {"resourceType": "Patient"}, 400),  # id missing
        ("POST", "/fhir/Medication", {"resourceType": "Medication"}, 404),  # unknown type
        ("GET", "/fhir/Practitioner/1", None, 404),
        ("POST", "/fhir/AuditEvent", {"resourceType": "AuditEvent"}, 405),
        ("PUT", "/fhir/AuditEvent/1", {"resourceType": "AuditEvent", "id": "1"}, 405),
        ("DELETE", "/fhir/AuditEvent/1", None, 405),
        ("POST", "/fhir/Patient", [1, 2], 400),  # not an object
        ("POST", "/fhir", {"resourceType": "Patient"}, 400),  # not a Bundle
        ("POST", "/fhir", {"resourceType": "Bundle", "type": "collection"}, 400),
        ("GET", "/fhir/Patient/a/_history/x", None, 404),
        ("GET", "/nowhere", None, 404),
    ],
)
async def test_request_errors(
    client: httpx.AsyncClient, method: str, url: str, body: object, status: int
) -> None:
    response = await client.request(method, url, json=body)
    assert_outcome(response, status)


async def test_unsupported_media_type(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert_outcome(response, 415)


async def test_xml_is_not_acceptable(client: httpx.AsyncClient) -> None:
    assert_outcome(
        await client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406
    )
    assert_outcome(await client.get("/fhir/metadata?_format=xml"), 406)
    ok = await client.get("/fhir/metadata", headers={"Accept": "application/fhir+json"})
    assert ok.status_code == 200


async def test_body_over_the_limit(client: httpx.AsyncClient) -> None:
    big = {"resourceType": "Patient", "name": [{"family": "x" * 300_000}]}
    assert_outcome(await client.post("/fhir/Patient", json=big), 413)


async def test_bad_if_match(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "id": "a"}
    assert_outcome(
        await client.put("/fhir/Patient/a", json=body, headers={"If-Match": "nope"}), 400
    )


async def test_store_down_gives_503_then_recovers(client: httpx.AsyncClient) -> None:
    transport = client._transport
    app = transport.app  # type: ignore[attr-defined]
    store = app.state.store
    real_commit, real_read, real_ping = store.commit, store.read, store.ping

    async def down(*_: object, **__: object) -> None:
        raise StoreUnavailable("simulated outage")

    store.commit = store.read = store.ping = down
    try:
        assert_outcome(await client.post("/fhir/Patient", json={"resourceType": "Patient"}), 503)
        assert_outcome(await client.get("/fhir/Patient/x"), 503)
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["store"]["status"] == "fail"
        # Routes outside the service layer (HL7 dead letters) answer 503 too, not 500.
        real_find = store.find_records
        store.find_records = down
        try:
            assert_outcome(await client.get("/hl7/v2/failed"), 503)
        finally:
            store.find_records = real_find
    finally:
        store.commit, store.read, store.ping = real_commit, real_read, real_ping
    assert (await client.get("/health/ready")).status_code == 200
    assert (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).status_code == 201
    history = (await client.get("/fhir/Patient/_history")).json()
    assert len(history["entry"]) == 1  # the failed write left nothing behind


async def test_required_binding_and_invariant_violations(client: httpx.AsyncClient) -> None:
    bogus = {"resourceType": "Patient", "gender": "bogus"}
    outcome = assert_outcome(await client.post("/fhir/Patient", json=bogus), 400)
    assert outcome["issue"][0]["expression"] == ["Patient.gender"]
    assert "AdministrativeGender" in outcome["issue"][0]["diagnostics"]
    done = {"resourceType": "Observation", "status": "done", "code": {"text": "x"}}
    outcome = assert_outcome(await client.post("/fhir/Observation", json=done), 400)
    assert outcome["issue"][0]["expression"] == ["Observation.status"]
    # obs-6: dataAbsentReason only when there is no value
    both = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueString": "v",
        "dataAbsentReason": {"text": "unknown"},
    }
    outcome = assert_outcome(await client.post("/fhir/Observation", json=both), 400)
    assert "obs-6" in str(outcome)


def _tx(entry: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}


_POST_PATIENT = {"method": "POST", "url": "Patient"}


@pytest.mark.parametrize(
    ("method", "url", "body", "headers", "status", "expression"),
    [
        ("GET", "/fhir/Patient/a/_history/99999999999999999999999", None, {}, 404, None),
        ("GET", "/fhir/_history?_cursor=99999999999999999999999999", None, {}, 400, None),
        # str.isdigit() says yes to these; int() does not (or chokes on 5,000 digits)
        ("GET", "/fhir/_history?_cursor=\u00b2", None, {}, 400, None),
        ("GET", "/fhir/Patient/_history?_count=\u00b2", None, {}, 400, "_count"),
        ("GET", "/fhir/Patient/_history?_count=" + "9" * 5000, None, {}, 200, None),
        ("GET", "/fhir/Patient/a/_history/\u00b2", None, {}, 404, None),
        ("GET", "/fhir/Patient/_history?_since=9999-12-31T23:59:59-14:00", None, {}, 400, "_since"),
        (
            "PUT",
            "/fhir/Patient/a",
            {"resourceType": "Patient", "id": "a", "meta": "x"},
            {},
            400,
            "Patient.meta",
        ),
        (
            "PATCH",
            "/fhir/Patient/a",
            [{"op": "add", "path": "/meta", "value": "x"}],
            {"Content-Type": "application/json-patch+json"},
            400,
            "Patient.meta",
        ),
        (
            "POST",
            "/fhir/Patient",
            {"resourceType": "Patient", "meta": "x"},
            {},
            400,
            "Patient.meta",
        ),
        (
            "POST",
            "/fhir",
            _tx(
                {
                    "request": {**_POST_PATIENT, "ifMatch": 5},
                    "resource": {"resourceType": "Patient"},
                }
            ),
            {},
            400,
            "Bundle.entry[0].request.ifMatch",
        ),
        (
            "POST",
            "/fhir",
            _tx(
                {
                    "request": {**_POST_PATIENT, "ifNoneExist": 5},
                    "resource": {"resourceType": "Patient"},
                }
            ),
            {},
            400,
            "Bundle.entry[0].request.ifNoneExist",
        ),
        (
            "POST",
            "/fhir",
            _tx({"fullUrl": 5, "request": _POST_PATIENT, "resource": {"resourceType": "Patient"}}),
            {},
            400,
            "Bundle.entry[0].fullUrl",
        ),
        (
            "POST",
            "/fhir",
            _tx(
                {
                    "request": {"method": "PATCH", "url": "Patient/a"},
                    "resource": {"resourceType": "Binary", "data": 5},
                }
            ),
            {},
            400,
            "Bundle.entry.resource.data",
        ),
        (
            "POST",
            "/fhir/Patient/$validate",
            {"resourceType": "Parameters", "parameter": 5},
            {},
            400,
            "Parameters.parameter",
        ),
        (
            "POST",
            "/fhir/Patient/$validate",
            {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": 5}]},
            {},
            400,
            "resource",
        ),
        (
            "POST",
            "/fhir/Patient/$validate?mode=bogus",
            {"resourceType": "Patient"},
            {},
            400,
            "mode",
        ),
    ],
)
async def test_malformed_parts_are_400s_naming_them(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: object,
    headers: dict[str, str],
    status: int,
    expression: str | None,
) -> None:
    await client.put("/fhir/Patient/a", json={"resourceType": "Patient", "id": "a"})
    response = await client.request(method, url, json=body, headers=headers)
    if status < 400:  # a huge _count is clamped, not refused
        assert response.status_code == status, response.text
        return
    outcome = assert_outcome(response, status)
    if expression is not None:
        assert outcome["issue"][0]["expression"] == [expression]


async def test_search_errors_name_the_parameter_in_expression(client: httpx.AsyncClient) -> None:
    outcome = assert_outcome(await client.get("/fhir/Observation?date=2020-13"), 400)
    assert outcome["issue"][0]["expression"] == ["date"]
    conditional = await client.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers={"If-None-Exist": "birthdate=x"}
    )
    assert assert_outcome(conditional, 400)["issue"][0]["expression"] == ["birthdate"]


async def test_if_modified_since_in_utc_origin_unknown_form(client: httpx.AsyncClient) -> None:
    """RFC 5322 "-0000" parses to a date without a zone: read as UTC, never a 500."""
    await client.put("/fhir/Patient/m", json={"resourceType": "Patient", "id": "m"})
    later = await client.get(
        "/fhir/Patient/m", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 -0000"}
    )
    assert later.status_code == 304
    earlier = await client.get(
        "/fhir/Patient/m", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 -0000"}
    )
    assert earlier.status_code == 200


async def test_a_resource_nested_hundreds_deep_is_a_400(client: httpx.AsyncClient) -> None:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(300):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    answer = await client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "extension": [extension]}
    )
    assert answer.status_code == 400
    issue = answer.json()["issue"][0]
    assert issue["code"] == "too-costly"
    # Refused by the nesting limit before validation, at the level where it is crossed.
    (where,) = issue["expression"]
    assert where.startswith("Patient.extension[0].extension[0].extension")


async def test_a_content_length_that_is_not_ascii_digits(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/fhir/Patient",
        content=b'{"resourceType": "Patient"}',
        headers={"Content-Type": b"application/fhir+json", "Content-Length": "²".encode("latin-1")},
    )
    # Not a size the limit can be checked against: the body is read (and bounded) as sent.
    assert answer.status_code == 201, answer.text
