"""Every path a query can take answers as if the data the caller may not read did not exist.

For each caller (a patient-context app, administrative staff, a doctor whose token only
reaches laboratory results) two servers hold the same data, except that the second also
holds resources that caller may not read. Every query path is sent to both with the same
token; the answers (status, diagnostics, totals, entries and their order, link relations)
must be identical. A new query path gets a case in ``PATHS``.

Conditional creates and updates cannot answer as if a hidden match did not exist without
making the duplicate their criteria exist to prevent: they are refused, and the refusal
must neither return nor name the match (see docs/security.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import pprint
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import _client, bearer, mint

LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LAB = f"{CATEGORY}|laboratory"
HIV_CODE = "75622-1"


def patient(pid: str, family: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:mrn", "value": pid}],
        "name": [{"family": family}],
        "birthDate": "1980-01-01",
    }


def observation(oid: str, subject: str, code: str, category: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "preliminary",  # final records refuse deletion; these may be deleted
        "identifier": [{"system": "urn:obs", "value": oid}],
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{subject}"},
        "effectiveDateTime": "2024-01-15T10:00:00+00:00",
        **more,
    }


def encounter(eid: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{subject}"},
    }


def medication(mid: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "dolutegravir"},
        "subject": {"reference": f"Patient/{subject}"},
    }


def provenance(pid: str, *targets: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "id": pid,
        "target": [{"reference": t} for t in targets],
        "recorded": "2024-01-15T10:00:00+00:00",
        "agent": [{"who": {"display": "lab"}}],
    }


# Written in this order on both servers (the second one also gets the caller's hidden ones).
DATA: list[dict[str, Any]] = [
    patient("p1", "Alpha"),
    patient("p2", "Beta"),
    observation("o1-lab", "p1", "1234-5", "laboratory"),
    observation("o1-vs", "p1", "8867-4", "vital-signs"),
    observation("o2-hiv", "p2", HIV_CODE, "laboratory"),
    # about p2, performed by p1: not about p1, whatever the compartment definition says
    observation("o2-perf", "p2", "1234-5", "laboratory", performer=[{"reference": "Patient/p1"}]),
    observation("o2-del", "p2", "1234-5", "laboratory"),
    encounter("e1", "p1"),
    encounter("e2", "p2"),
    medication("m1", "p1"),
    medication("m2", "p2"),
    provenance("pv1", "Observation/o1-lab", "Patient/p1"),
    provenance("pv2", "Observation/o2-hiv", "Patient/p2"),
]
DELETED = ("Observation", "o2-del")  # deleted after loading, where it exists


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    scope: str
    hidden: frozenset[str]  # ids of DATA the caller may not read
    patient: str | None = None
    may_delete_observations: bool = False


P2 = frozenset({"p2", "o2-hiv", "o2-perf", "o2-del", "e2", "m2", "pv2"})
CLINICAL = frozenset({"o1-lab", "o1-vs", "o2-hiv", "o2-perf", "o2-del", "m1", "m2", "pv1", "pv2"})
CALLERS = [
    Caller("patient-app", "doctor", "patient/*.cruds", P2, "p1", may_delete_observations=True),
    Caller("admin", "admin", "user/*.cruds", CLINICAL),
    Caller(
        "lab-only",
        "doctor",
        f"user/Patient.rs user/Encounter.rs user/Observation.rds?category={LAB}",
        frozenset({"o1-vs"}),
        may_delete_observations=True,
    ),
]


@dataclass
class Path_:
    method: str
    url: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def batch(*entries: tuple[str, str], kind: str = "batch") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"request": {"method": m, "url": u}} for m, u in entries],
    }


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PATCH_OPS = [{"op": "replace", "path": "/status", "value": "amended"}]

PATHS: dict[str, Path_] = {
    # type search, totals, counts, sort order and paging
    "search": Path_("GET", "/fhir/Observation"),
    "search-count": Path_("GET", "/fhir/Observation?_summary=count"),
    "search-total": Path_("GET", "/fhir/Observation?_total=accurate&_count=1"),
    "search-token": Path_("GET", f"/fhir/Observation?code={LOINC}|1234-5"),
    "search-identifier": Path_("GET", "/fhir/Observation?identifier=urn:obs|o2-hiv"),
    "search-sorted-paged": Path_("GET", "/fhir/Observation?_sort=-_id&_count=1"),
    "search-patient-name": Path_("GET", "/fhir/Patient?name=Beta"),
    "search-post": Path_("POST", "/fhir/Observation/_search", f"code={LOINC}|{HIV_CODE}", FORM),
    "search-encounter": Path_("GET", "/fhir/Encounter?_total=accurate"),
    "search-medication": Path_("GET", "/fhir/MedicationRequest"),
    "search-provenance": Path_("GET", "/fhir/Provenance?_total=accurate"),
    # system level
    "system-type": Path_("GET", "/fhir?_type=Patient,Encounter&_total=accurate"),
    "system-all": Path_("GET", "/fhir?_count=100&_total=accurate"),
    "system-count": Path_("GET", "/fhir?_type=Patient&_summary=count"),
    # includes
    "include": Path_("GET", "/fhir/Encounter?_include=Encounter:subject"),
    "include-any": Path_("GET", "/fhir/Encounter?_include=*"),
    "include-iterate": Path_(
        "GET", "/fhir/Patient?_revinclude=Encounter:subject&_include:iterate=Encounter:subject"
    ),
    "revinclude": Path_("GET", "/fhir/Patient?_revinclude=Observation:subject"),
    "revinclude-any": Path_("GET", "/fhir/Patient?_revinclude=*"),
    "revinclude-provenance": Path_("GET", "/fhir/Patient?_revinclude=Provenance:target"),
    "revinclude-audit": Path_("GET", "/fhir/Patient?_revinclude=AuditEvent:patient"),
    # chains
    "chain": Path_("GET", "/fhir/Encounter?subject.name=Beta"),
    "chain-typed": Path_("GET", "/fhir/Encounter?subject:Patient.identifier=urn:mrn|p2"),
    "chain-observation": Path_("GET", "/fhir/Observation?subject.name=Beta"),
    "chain-two-deep": Path_("GET", "/fhir/Provenance?target:Observation.subject.name=Beta"),
    # reverse chains
    "has": Path_("GET", f"/fhir/Patient?_has:Observation:subject:code={LOINC}|{HIV_CODE}"),
    "has-identifier": Path_("GET", "/fhir/Patient?_has:Observation:subject:identifier=urn:obs|"),
    "has-encounter": Path_("GET", "/fhir/Patient?_has:Encounter:subject:status=finished"),
    "has-audit": Path_("GET", "/fhir/Patient?_has:AuditEvent:patient:action=R"),
    # reads by id, versions, history
    "read": Path_("GET", "/fhir/Observation/o2-hiv"),
    "read-patient": Path_("GET", "/fhir/Patient/p2"),
    "read-deleted": Path_("GET", "/fhir/Observation/o2-del"),
    "read-vital": Path_("GET", "/fhir/Observation/o1-vs"),
    "vread": Path_("GET", "/fhir/Observation/o2-hiv/_history/1"),
    "vread-deletion": Path_("GET", "/fhir/Observation/o2-del/_history/2"),
    "history-instance": Path_("GET", "/fhir/Observation/o2-hiv/_history"),
    "history-deleted": Path_("GET", "/fhir/Observation/o2-del/_history"),
    "history-type": Path_("GET", "/fhir/Observation/_history"),
    "history-type-patient": Path_("GET", "/fhir/Patient/_history"),
    "history-system": Path_("GET", "/fhir/_history?_count=100"),
    # operations
    "validate-delete": Path_(
        "POST",
        "/fhir/Observation/o2-hiv/$validate",
        {"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]},
    ),
    # Bundle entries
    "batch-reads": Path_(
        "POST",
        "/fhir",
        batch(
            ("GET", "Observation?identifier=urn:obs|o2-hiv"),
            ("GET", "Observation/o2-hiv"),
            ("GET", "Observation/o1-vs"),
            ("GET", f"Patient?_has:Observation:subject:code={LOINC}|{HIV_CODE}"),
            ("GET", "Observation/o2-hiv/_history"),
        ),
    ),
    "batch-conditional-patch": Path_(
        "POST",
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "request": {"method": "PATCH", "url": "Observation?identifier=urn:obs|o2-hiv"},
                    "resource": {
                        "resourceType": "Binary",
                        "contentType": "application/json-patch+json",
                        "data": base64.b64encode(json.dumps(PATCH_OPS).encode()).decode(),
                    },
                }
            ],
        },
    ),
    # writes that find nothing the caller may read answer as if nothing were there
    "conditional-delete": Path_("DELETE", "/fhir/Observation?identifier=urn:obs|o2-hiv"),
    "delete-by-id": Path_("DELETE", "/fhir/Observation/o2-hiv"),
    "delete-deleted": Path_("DELETE", "/fhir/Observation/o2-del"),
    "patch-by-id": Path_(
        "PATCH",
        "/fhir/Observation/o2-hiv",
        PATCH_OPS,
        {"Content-Type": "application/json-patch+json"},
    ),
}


@contextlib.asynccontextmanager
async def server(tmp_path: Path, kind: str = "sqlite") -> AsyncIterator[httpx.AsyncClient]:
    gen = _client(kind, tmp_path, auth_required=True)
    client = await gen.__anext__()
    try:
        yield client
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await gen.__anext__()


async def load(client: httpx.AsyncClient, hidden: frozenset[str], *, with_hidden: bool) -> None:
    doctor = bearer(mint(client, role="doctor", scope="user/*.cruds"))
    for resource in DATA:
        if resource["id"] in hidden and not with_hidden:
            continue
        url = f"/fhir/{resource['resourceType']}/{resource['id']}"
        put = await client.put(url, json=resource, headers=doctor)
        assert put.status_code == 201, put.text
    if with_hidden or DELETED[1] not in hidden:
        gone = await client.delete(f"/fhir/{DELETED[0]}/{DELETED[1]}", headers=doctor)
        assert gone.status_code == 204, gone.text


async def send(client: httpx.AsyncClient, path: Path_, token: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] = {}
    if isinstance(path.body, str):
        body["content"] = path.body
    elif path.body is not None:
        body["json"] = path.body
    return await client.request(path.method, path.url, headers={**token, **path.headers}, **body)


def shape(response: httpx.Response) -> Any:
    """What a caller can observe of an answer, minus what differs between any two servers
    (server-made ids and times, cursor values)."""
    body = response.json() if response.content else None
    return response.status_code, _shape_body(body)


def _shape_body(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    kind = body.get("resourceType")
    if kind == "OperationOutcome":
        return [
            (i.get("severity"), i.get("code"), i.get("diagnostics"), i.get("expression"))
            for i in body.get("issue", [])
        ]
    if kind == "Bundle":
        return {
            "type": body.get("type"),
            "total": body.get("total"),
            "links": sorted(link["relation"] for link in body.get("link", [])),
            "entries": [_shape_entry(e) for e in body.get("entry", [])],
        }
    return (kind, body.get("id"), body.get("meta", {}).get("versionId"))


def _shape_entry(entry: dict[str, Any]) -> Any:
    response = entry.get("response", {})
    return (
        entry.get("search", {}).get("mode"),
        response.get("status"),
        _shape_body(entry.get("resource")),
        _shape_body(response.get("outcome")),
    )


@pytest.mark.parametrize("kind", ["sqlite", "mongo"])
@pytest.mark.parametrize("caller", CALLERS, ids=[c.name for c in CALLERS])
async def test_every_path_answers_as_if_hidden_data_did_not_exist(
    caller: Caller, kind: str, tmp_path: Path
) -> None:
    async with (
        server(tmp_path / "without", kind) as without,
        server(tmp_path / "with", kind) as with_hidden,
    ):
        await load(without, caller.hidden, with_hidden=False)
        await load(with_hidden, caller.hidden, with_hidden=True)
        tokens = {
            c: bearer(mint(c, role=caller.role, scope=caller.scope, patient=caller.patient))
            for c in (without, with_hidden)
        }
        differences = {}
        allowed: dict[str, int] = {}
        for name, path in PATHS.items():
            answers = []
            for c in (without, with_hidden):
                answer = await send(c, path, tokens[c])
                assert answer.status_code < 500, (name, answer.text)
                answers.append(shape(answer))
            if answers[0] != answers[1]:
                differences[name] = answers
            allowed[name] = answers[0][0]
        assert not differences, pprint.pformat(differences, width=100)
        assert sum(status < 300 for status in allowed.values()) >= 10, allowed  # not vacuous
        # Nothing hidden was changed by the writes above.
        doctor = bearer(mint(with_hidden, role="doctor", scope="user/*.cruds"))
        for rid in sorted(caller.hidden & {"o2-hiv", "o1-vs"}):
            kept = await with_hidden.get(f"/fhir/Observation/{rid}", headers=doctor)
            assert kept.status_code == 200 and kept.json()["meta"]["versionId"] == "1"


CONDITIONAL_CREATES = {
    "if-none-exist": lambda body: Path_(
        "POST", "/fhir/Observation", body, {"If-None-Exist": "identifier=urn:obs|o2-hiv"}
    ),
    "conditional-update": lambda body: Path_(
        "PUT", "/fhir/Observation?identifier=urn:obs|o2-hiv", body
    ),
    "transaction-if-none-exist": lambda body: Path_(
        "POST",
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": body,
                    "request": {
                        "method": "POST",
                        "url": "Observation",
                        "ifNoneExist": "identifier=urn:obs|o2-hiv",
                    },
                }
            ],
        },
    ),
}


@pytest.mark.parametrize("kind", sorted(CONDITIONAL_CREATES))
async def test_a_conditional_create_never_returns_or_duplicates_a_hidden_match(
    kind: str, tmp_path: Path
) -> None:
    """The issue's example: a patient app for p1 names p2's HIV result's identifier."""
    async with server(tmp_path) as client:
        await load(client, P2, with_hidden=True)
        app = bearer(mint(client, role="doctor", scope="patient/*.cruds", patient="p1"))
        mine = observation("new", "p1", "1234-5", "laboratory")
        mine["identifier"] = [{"system": "urn:obs", "value": "o2-hiv"}]
        del mine["id"]
        path = CONDITIONAL_CREATES[kind](mine)
        answer = await client.request(
            path.method, path.url, json=path.body, headers={**app, **path.headers}
        )
        assert answer.status_code == 412, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
        for secret in ('o2-hiv"', "p2", HIV_CODE, "Beta"):
            assert secret not in answer.text.replace('"urn:obs|o2-hiv"', "")
        doctor = bearer(mint(client, role="doctor", scope="user/*.cruds"))
        same = await client.get(
            "/fhir/Observation?identifier=urn:obs|o2-hiv&_total=accurate", headers=doctor
        )
        assert same.json()["total"] == 1  # no duplicate was made


async def test_a_conditional_create_matching_a_visible_resource_returns_it(
    tmp_path: Path,
) -> None:
    async with server(tmp_path) as client:
        await load(client, P2, with_hidden=True)
        app = bearer(mint(client, role="doctor", scope="patient/*.cruds", patient="p1"))
        mine = observation("x", "p1", "1234-5", "laboratory")
        del mine["id"]
        found = await client.post(
            "/fhir/Observation",
            json=mine,
            headers={**app, "If-None-Exist": "identifier=urn:obs|o1-lab"},
        )
        assert found.status_code == 200 and found.json()["id"] == "o1-lab"


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        (observation("w1", "p2", "1234-5", "laboratory"), 403),  # about another patient
        # a performer is a participant: the observation is still about p1
        (
            observation(
                "w2", "p1", "1234-5", "laboratory", performer=[{"reference": "Patient/p2"}]
            ),
            201,
        ),
        (encounter("w3", "p2"), 403),
        (medication("w4", "p2"), 403),
        (provenance("w5", "Patient/p1", "Patient/p2"), 403),  # about p2 too
        (provenance("w6", "Patient/p1"), 201),
        (patient("w7", "Gamma"), 403),  # a patient app writes no other Patient
    ],
)
async def test_patient_context_writes_stay_with_the_tokens_patient(
    resource: dict[str, Any], status: int, tmp_path: Path
) -> None:
    async with server(tmp_path) as client:
        await load(client, frozenset(), with_hidden=True)
        app = bearer(mint(client, role="doctor", scope="patient/*.cruds", patient="p1"))
        body = {k: v for k, v in resource.items() if k != "id"}
        created = await client.post(f"/fhir/{resource['resourceType']}", json=body, headers=app)
        assert created.status_code == status, created.text
        put = await client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=app
        )
        assert put.status_code == status, put.text


async def test_patient_app_cannot_move_a_resource_to_another_patient(tmp_path: Path) -> None:
    async with server(tmp_path) as client:
        await load(client, frozenset(), with_hidden=True)
        app = bearer(mint(client, role="doctor", scope="patient/*.cruds", patient="p1"))
        moved = observation("o1-lab", "p2", "1234-5", "laboratory")
        assert (
            await client.put("/fhir/Observation/o1-lab", json=moved, headers=app)
        ).status_code == 403


AUDITOR_CLINICAL_PATHS = [
    "/fhir/AuditEvent?patient.name=Beta",
    "/fhir/AuditEvent?patient.birthdate=1980-01-01",
    "/fhir/AuditEvent?entity:Observation.code=75622-1",
    "/fhir/AuditEvent?entity.identifier=urn:obs|o2-hiv",
    "/fhir/AuditEvent?agent:Patient.name=Beta",
    "/fhir/AuditEvent?_has:Observation:subject:code=75622-1",
]


async def test_auditors_search_audit_events_but_not_clinical_content(tmp_path: Path) -> None:
    async with server(tmp_path) as client:
        await load(client, frozenset(), with_hidden=True)
        auditor = bearer(mint(client, role="auditor", scope="user/AuditEvent.rs"))
        own = await client.get(
            "/fhir/AuditEvent?patient=Patient/p2&_total=accurate", headers=auditor
        )
        assert own.status_code == 200 and own.json()["total"] > 0
        for url in AUDITOR_CLINICAL_PATHS:
            answer = await client.get(url, headers=auditor)
            assert answer.status_code in (400, 403), (url, answer.text)
            assert answer.json()["resourceType"] == "OperationOutcome"
        included = await client.get(
            "/fhir/AuditEvent?_include=AuditEvent:patient&_include=AuditEvent:entity&_count=200",
            headers=auditor,
        )
        kinds = {e["resource"]["resourceType"] for e in included.json().get("entry", [])}
        assert kinds == {"AuditEvent"}
        system = await client.get("/fhir?_count=200", headers=auditor)
        kinds = {e["resource"]["resourceType"] for e in system.json().get("entry", [])}
        assert kinds == {"AuditEvent"}
