"""Unknown resource types and operations over HTTP, for callers of every kind (issue #16).

What the server serves is public, so ``/fhir/Bogus/...`` and ``$lastn`` are a 404
not-supported to every caller with a valid token, whatever their scopes; only types that
exist get scope decisions (403); a missing or bad token is still a 401 first. Each refusal
leaves its AuditEvent.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import bearer, mint

# (role, scope, patient): wide, narrow, other role, auditor, patient-context app.
CALLERS = [
    ("doctor", "user/*.cruds", None),
    ("doctor", "user/Patient.r", None),
    ("nurse", "user/*.rs", None),
    ("auditor", "user/AuditEvent.rs", None),
    ("doctor", "patient/*.rs", "p1"),
]
BOGUS = {"resourceType": "Bogus", "id": "1"}
UNKNOWN = [
    ("GET", "/fhir/Bogus/1"),
    ("GET", "/fhir/Bogus?x=1"),
    ("GET", "/fhir/Bogus/_history"),
    ("GET", "/fhir/Bogus/1/_history"),
    ("GET", "/fhir/Bogus/1/_history/1"),
    ("POST", "/fhir/Bogus"),
    ("POST", "/fhir/Bogus/_search"),
    ("PUT", "/fhir/Bogus/1"),
    ("PUT", "/fhir/Bogus?x=1"),
    ("PATCH", "/fhir/Bogus/1"),
    ("DELETE", "/fhir/Bogus/1"),
    ("DELETE", "/fhir/Bogus?x=1"),
    ("POST", "/fhir/Bogus/$validate"),
    ("POST", "/fhir/Bogus/1"),  # no route takes POST here: still the type first
    ("GET", "/fhir/Patient/$lastn"),
    ("POST", "/fhir/Patient/$lastn"),
    ("GET", "/fhir/Observation/$lastn?code=x"),
    ("GET", "/fhir/$export"),
    ("POST", "/fhir/$export"),
    ("GET", "/fhir/Patient/1/$bogus"),
    ("POST", "/fhir/Patient/1/$everything"),
    ("GET", "/fhir/Patient/1/_history/1/$bogus"),
]


async def _send(client: httpx.AsyncClient, method: str, url: str, **headers: str) -> Any:
    body = BOGUS if method in ("POST", "PUT", "PATCH") else None
    return await client.request(method, url, json=body, headers=headers)


def _is_not_supported(response: httpx.Response) -> bool:
    if response.status_code != 404:
        return False
    outcome = response.json()
    return outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == (
        "not-supported"
    )


async def _audit_count(client: httpx.AsyncClient) -> int:
    auditor = bearer(mint(client, role="auditor", scope="user/AuditEvent.rs"))
    found = await client.get("/fhir/AuditEvent?_summary=count", headers=auditor)
    assert found.status_code == 200, found.text
    total: int = found.json()["total"]
    return total


async def test_unknown_types_and_operations_are_404_for_every_caller(
    secured: httpx.AsyncClient,
) -> None:
    wrong = []
    for role, scope, patient in CALLERS:
        token = mint(secured, role=role, scope=scope, patient=patient)
        for method, url in UNKNOWN:
            answer = await _send(secured, method, url, Authorization=f"Bearer {token}")
            if not _is_not_supported(answer):
                wrong.append((role, scope, method, url, answer.status_code, answer.text[:120]))
    assert wrong == []


async def test_the_answer_names_the_type_or_operation(secured: httpx.AsyncClient) -> None:
    token = bearer(mint(secured, role="nurse", scope="user/Patient.r"))
    typed = (await secured.get("/fhir/Bogus/1", headers=token)).json()["issue"][0]
    assert "'Bogus'" in typed["diagnostics"]
    operation = (await secured.get("/fhir/Patient/$lastn", headers=token)).json()["issue"][0]
    assert "'$lastn'" in operation["diagnostics"]


@pytest.mark.parametrize(("method", "url"), UNKNOWN)
async def test_a_missing_or_bad_token_is_still_401_first(
    secured: httpx.AsyncClient, method: str, url: str
) -> None:
    missing = await _send(secured, method, url)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    forged = await _send(secured, method, url, Authorization="Bearer eyJhbGciOiJub25lIn0.e30.")
    assert forged.status_code == 401


async def test_types_that_exist_still_get_scope_decisions(secured: httpx.AsyncClient) -> None:
    narrow = bearer(mint(secured, role="doctor", scope="user/Patient.r"))
    assert (await secured.get("/fhir/Observation/1", headers=narrow)).status_code == 403
    assert (await secured.post("/fhir/Observation", json={}, headers=narrow)).status_code == 403
    auditor = bearer(mint(secured, role="auditor", scope="user/AuditEvent.rs"))
    assert (await secured.get("/fhir/Patient?name=x", headers=auditor)).status_code == 403


async def test_a_known_operation_with_the_wrong_method_is_405(
    secured: httpx.AsyncClient,
) -> None:
    token = bearer(mint(secured, role="doctor", scope="user/*.cruds"))
    for url in ("/fhir/Patient/$validate", "/fhir/Patient/1/$validate"):
        answer = await secured.get(url, headers=token)
        assert answer.status_code == 405, (url, answer.text)
        assert answer.json()["issue"][0]["code"] == "not-supported"


async def test_every_refusal_is_audited(secured: httpx.AsyncClient) -> None:
    token = mint(secured, role="nurse", scope="user/Patient.r")
    before = await _audit_count(secured)
    for method, url in UNKNOWN:
        await _send(secured, method, url, Authorization=f"Bearer {token}")
    for method, url in UNKNOWN[:3]:
        await _send(secured, method, url)  # no token
    # each refusal one AuditEvent; the two counting searches add one each
    assert await _audit_count(secured) == before + len(UNKNOWN) + 3 + 1


async def test_batch_entries_for_unknown_targets_are_404(secured: httpx.AsyncClient) -> None:
    urls = ["Bogus/1", "Bogus?x=1", "Patient/$lastn", "$export", "Patient/1/$everything"]
    for role, scope, patient in CALLERS:
        token = bearer(mint(secured, role=role, scope=scope, patient=patient))
        entries = [{"request": {"method": "GET", "url": u}} for u in urls]
        entries += [
            {"request": {"method": "POST", "url": "Bogus"}, "resource": BOGUS},
            {"request": {"method": "PUT", "url": "Bogus/1"}, "resource": BOGUS},
            {"request": {"method": "DELETE", "url": "Bogus/1"}},
        ]
        batch = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        answer = await secured.post("/fhir", json=batch, headers=token)
        assert answer.status_code == 200, answer.text
        for entry in answer.json()["entry"]:
            assert entry["response"]["status"].startswith("404"), (role, scope, entry)
            assert entry["response"]["outcome"]["issue"][0]["code"] == "not-supported"


async def test_a_transaction_naming_an_unknown_type_is_404(secured: httpx.AsyncClient) -> None:
    for role, scope, patient in CALLERS:
        token = bearer(mint(secured, role=role, scope=scope, patient=patient))
        transaction = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "GET", "url": "Patient/p1"}},
                {
                    "request": {"method": "POST", "url": "Bogus", "ifNoneExist": "x=1"},
                    "resource": BOGUS,
                },
            ],
        }
        answer = await secured.post("/fhir", json=transaction, headers=token)
        assert _is_not_supported(answer), (role, scope, answer.text)
        assert answer.json()["issue"][0]["expression"] == ["Bundle.entry[1].request.url"]


async def test_batch_get_refusals_are_audited(secured: httpx.AsyncClient) -> None:
    token = bearer(mint(secured, role="nurse", scope="user/Patient.r"))
    before = await _audit_count(secured)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Bogus/1"}},
            {"request": {"method": "GET", "url": "Observation/1"}},  # type exists: 403
        ],
    }
    answer = await secured.post("/fhir", json=batch, headers=token)
    statuses = [e["response"]["status"][:3] for e in answer.json()["entry"]]
    assert statuses == ["404", "403"]
    # two refused entries and the batch itself; the counting search adds one
    assert await _audit_count(secured) == before + 3 + 1
