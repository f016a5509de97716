"""Every interaction kind yields exactly the AuditEvent BALP asks for, and R4 accepts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from audit.events import AccessRecord, Interaction, build_audit_event, outcome_code

WHEN = datetime(2026, 3, 1, 8, 30, 15, 250000, tzinfo=UTC)
WHEN_TEXT = "2026-03-01T08:30:15.250000Z"
SERVER = "medicore-test"

SOURCE = {
    "site": "medicore-test",
    "observer": {"identifier": {"value": "medicore-test"}},
    "type": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
            "code": "4",
            "display": "Application Server",
        }
    ],
}
REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}
USER_AUTH = {
    "system": "http://dicom.nema.org/resources/ontology/DCM",
    "code": "110114",
    "display": "User Authentication",
}
SRC = ("http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID")
DST = ("http://dicom.nema.org/resources/ontology/DCM", "110152", "Destination Role ID")
APP = ("http://dicom.nema.org/resources/ontology/DCM", "110150", "Application")
CUSTODIAN = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
    "custodian",
    "Custodian",
)
ROLE_NURSE = [
    {"coding": [{"system": "https://fhir.medicore.example/CodeSystem/staff-role", "code": "nurse"}]}
]
POU_TREAT = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
]


def rest_subtype(code: str) -> list[dict[str, str]]:
    return [{"system": "http://hl7.org/fhir/restful-interaction", "code": code, "display": code}]


def coding(triple: tuple[str, str, str]) -> dict[str, Any]:
    return {"coding": [{"system": triple[0], "code": triple[1], "display": triple[2]}]}


def user_agent(code: str, display: str) -> dict[str, Any]:
    return {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": code,
                    "display": display,
                }
            ]
        },
        "who": {
            "identifier": {"system": "https://fhir.medicore.example/sid/user", "value": "u-17"}
        },
        "requestor": True,
        "role": ROLE_NURSE,
        "purposeOfUse": POU_TREAT,
    }


def client_agent(kind: tuple[str, str, str], *, requestor: bool = False) -> dict[str, Any]:
    return {
        "type": coding(kind),
        "who": {
            "identifier": {
                "system": "https://fhir.medicore.example/sid/client",
                "value": "ward-app",
            }
        },
        "requestor": requestor,
        "network": {"address": "10.1.2.3", "type": "2"},
    }


def server_agent(kind: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "type": coding(kind),
        "who": {"identifier": {"value": "medicore-test"}},
        "requestor": False,
    }


def patient(pid: str) -> dict[str, Any]:
    return {
        "what": {"reference": f"Patient/{pid}"},
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
            "code": "1",
            "display": "Person",
        },
        "role": {
            "system": "http://terminology.hl7.org/CodeSystem/object-role",
            "code": "1",
            "display": "Patient",
        },
    }


SYSTEM_OBJECT = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
    "code": "2",
    "display": "System Object",
}


def data(reference: str) -> dict[str, Any]:
    return {
        "what": {"reference": reference},
        "type": SYSTEM_OBJECT,
        "role": {
            "system": "http://terminology.hl7.org/CodeSystem/object-role",
            "code": "4",
            "display": "Domain Resource",
        },
    }


def query(b64: str) -> dict[str, Any]:
    return {
        "type": SYSTEM_OBJECT,
        "role": {
            "system": "http://terminology.hl7.org/CodeSystem/object-role",
            "code": "24",
            "display": "Query",
        },
        "query": b64,
    }


REQUEST_ID = {
    "what": {"identifier": {"value": "req-1"}},
    "type": {
        "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
        "code": "XrequestId",
        "display": "transport specific unique identifier where http X-Request-Id is used",
    },
}


def record(interaction: str, status: int = 200, **overrides: Any) -> AccessRecord:
    fields: dict[str, Any] = {
        "interaction": interaction,
        "recorded": WHEN,
        "status": status,
        "user_id": "u-17",
        "client_id": "ward-app",
        "roles": ["nurse"],
        "purpose_of_use": ["TREAT"],
        "network_address": "10.1.2.3",
        "request_id": "req-1",
    }
    fields.update(overrides)
    return AccessRecord(**fields)


def event(
    *,
    type_: dict[str, str],
    subtype: list[dict[str, str]],
    action: str,
    outcome: str,
    desc: str,
    agents: list[dict[str, Any]],
    entities: list[dict[str, Any]],
) -> dict[str, Any]:
    built = {
        "resourceType": "AuditEvent",
        "id": "ev-1",
        "type": type_,
        "subtype": subtype,
        "action": action,
        "recorded": WHEN_TEXT,
        "outcome": outcome,
        "outcomeDesc": desc,
        "agent": agents,
        "source": SOURCE,
        "entity": entities,
    }
    if not entities:
        del built["entity"]
    return built


# (record, expected event) for every interaction kind; expected values written by hand.
# fmt: off
CASES: dict[str, tuple[AccessRecord, dict[str, Any]]] = {
    "create": (
        record("create", 201, resource_type="Observation", resource_id="o1", version_id="1",
               patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("create"), action="C", outcome="0",
              desc="HTTP 201 Created",
              agents=[user_agent("AUT", "author"), client_agent(SRC), server_agent(DST)],
              entities=[patient("p1"), data("Observation/o1/_history/1"), REQUEST_ID]),
    ),
    "read": (
        record("read", resource_type="Patient", resource_id="p1", version_id="3",
               patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("read"), action="R", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(DST),
                      server_agent(SRC)],
              entities=[patient("p1"), data("Patient/p1/_history/3"), REQUEST_ID]),
    ),
    "vread": (
        record("vread", resource_type="Encounter", resource_id="e9", version_id="2",
               patient_ids=["p2"]),
        event(type_=REST, subtype=rest_subtype("vread"), action="R", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(DST),
                      server_agent(SRC)],
              entities=[patient("p2"), data("Encounter/e9/_history/2"), REQUEST_ID]),
    ),
    "update": (
        record("update", resource_type="Observation", resource_id="o1", version_id="4",
               patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("update"), action="U", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("AUT", "author"), client_agent(SRC), server_agent(DST)],
              entities=[patient("p1"), data("Observation/o1/_history/4"), REQUEST_ID]),
    ),
    "patch": (
        record("patch", resource_type="Patient", resource_id="p1", version_id="5",
               patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("patch"), action="U", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("AUT", "author"), client_agent(SRC), server_agent(DST)],
              entities=[patient("p1"), data("Patient/p1/_history/5"), REQUEST_ID]),
    ),
    "delete": (
        record("delete", resource_type="MedicationRequest", resource_id="m3", version_id="2",
               patient_ids=["p4"]),
        event(type_=REST, subtype=rest_subtype("delete"), action="D", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("AUT", "author"), client_agent(APP), server_agent(CUSTODIAN)],
              entities=[patient("p4"), data("MedicationRequest/m3/_history/2"), REQUEST_ID]),
    ),
    "search": (
        record("search", resource_type="Observation", patient_ids=["p1", "p2"],
               query="Observation?code=1234-5"),
        event(type_=REST, subtype=rest_subtype("search"), action="E", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(SRC),
                      server_agent(DST)],
              # base64 of "Observation?code=1234-5", computed with coreutils base64
              entities=[patient("p1"), patient("p2"), query("T2JzZXJ2YXRpb24/Y29kZT0xMjM0LTU="),
                        REQUEST_ID]),
    ),
    "history-instance": (
        record("history-instance", resource_type="Patient", resource_id="p1",
               patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("history-instance"), action="R", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(DST),
                      server_agent(SRC)],
              entities=[patient("p1"), data("Patient/p1"), REQUEST_ID]),
    ),
    "history-type": (
        record("history-type", resource_type="Encounter", patient_ids=["p7"],
               query="Encounter/_history?_count=5"),
        event(type_=REST, subtype=rest_subtype("history-type"), action="R", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(DST),
                      server_agent(SRC)],
              # base64 of "Encounter/_history?_count=5"
              entities=[patient("p7"), query("RW5jb3VudGVyL19oaXN0b3J5P19jb3VudD01"),
                        REQUEST_ID]),
    ),
    "history-system": (
        record("history-system", patient_ids=["p1", "p2"]),
        event(type_=REST, subtype=rest_subtype("history-system"), action="R", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(DST),
                      server_agent(SRC)],
              entities=[patient("p1"), patient("p2"), REQUEST_ID]),
    ),
    "operation": (
        record("operation", resource_type="Patient", resource_id="p1", operation="$everything",
               patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("operation"), action="E", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(SRC),
                      server_agent(DST)],
              entities=[
                  patient("p1"),
                  data("Patient/p1"),
                  {"type": SYSTEM_OBJECT,
                   "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                            "code": "20", "display": "Job"},
                   "name": "$everything"},
                  REQUEST_ID,
              ]),
    ),
    "batch": (
        record("batch", patient_ids=["p1"]),
        event(type_=REST, subtype=rest_subtype("batch"), action="E", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(SRC),
                      server_agent(DST)],
              entities=[patient("p1"), REQUEST_ID]),
    ),
    "transaction": (
        record("transaction", patient_ids=["p3"]),
        event(type_=REST, subtype=rest_subtype("transaction"), action="E", outcome="0",
              desc="HTTP 200 OK",
              agents=[user_agent("IRCP", "information recipient"), client_agent(SRC),
                      server_agent(DST)],
              entities=[patient("p3"), REQUEST_ID]),
    ),
    "hl7-ingest": (
        record("hl7-ingest", user_id=None, roles=(), purpose_of_use=(), client_id="lab-feed",
               network_address="lab.hospital.example", patient_ids=["p5"],
               description="ORU^R01 accepted"),
        event(type_={"system": "http://dicom.nema.org/resources/ontology/DCM",
                     "code": "110107", "display": "Import"},
              subtype=[{"system": "https://fhir.medicore.example/CodeSystem/audit-subtype",
                        "code": "hl7-ingest", "display": "HL7 v2 message ingest"}],
              action="C", outcome="0", desc="HTTP 200 OK: ORU^R01 accepted",
              agents=[
                  {"type": coding(SRC),
                   "who": {"identifier": {"system": "https://fhir.medicore.example/sid/client",
                                          "value": "lab-feed"}},
                   "requestor": True,
                   "network": {"address": "lab.hospital.example", "type": "1"}},
                  server_agent(DST),
              ],
              entities=[patient("p5"), REQUEST_ID]),
    ),
    "token-issue": (
        record("token-issue", user_id=None, roles=["system"], purpose_of_use=()),
        event(type_=USER_AUTH,
              subtype=[{"system": "urn:ihe:event-type-code", "code": "ITI-71",
                        "display": "Get Access Token"}],
              action="E", outcome="0", desc="HTTP 200 OK",
              agents=[
                  {"type": coding(SRC),
                   "who": {"identifier": {"system": "https://fhir.medicore.example/sid/client",
                                          "value": "ward-app"}},
                   "requestor": True,
                   "network": {"address": "10.1.2.3", "type": "2"},
                   "role": [{"coding": [{
                       "system": "https://fhir.medicore.example/CodeSystem/staff-role",
                       "code": "system"}]}]},
                  server_agent(DST),
              ],
              entities=[REQUEST_ID]),
    ),
    "token-revoke": (
        record("token-revoke", 400, user_id=None, roles=(), purpose_of_use=(),
               description="unauthorized_client", denied=True),
        event(type_=USER_AUTH,
              subtype=[{"system": "https://fhir.medicore.example/CodeSystem/audit-subtype",
                        "code": "token-revoke", "display": "Token revocation"}],
              action="E", outcome="4",
              desc="denied: HTTP 400 Bad Request: unauthorized_client",
              agents=[
                  {"type": coding(SRC),
                   "who": {"identifier": {"system": "https://fhir.medicore.example/sid/client",
                                          "value": "ward-app"}},
                   "requestor": True,
                   "network": {"address": "10.1.2.3", "type": "2"}},
                  server_agent(DST),
              ],
              entities=[REQUEST_ID]),
    ),
    "token-introspect": (
        record("token-introspect", 403, roles=["nurse"], purpose_of_use=(),
               description="insufficient_scope"),
        event(type_=USER_AUTH,
              subtype=[{"system": "https://fhir.medicore.example/CodeSystem/audit-subtype",
                        "code": "token-introspect", "display": "Token introspection"}],
              action="E", outcome="4",
              desc="denied: HTTP 403 Forbidden: insufficient_scope",
              agents=[
                  {"type": {"coding": [{
                      "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                      "code": "IRCP", "display": "information recipient"}]},
                   "who": {"identifier": {"system": "https://fhir.medicore.example/sid/user",
                                          "value": "u-17"}},
                   "requestor": True,
                   "role": [{"coding": [{
                       "system": "https://fhir.medicore.example/CodeSystem/staff-role",
                       "code": "nurse"}]}]},
                  client_agent(SRC),
                  server_agent(DST),
              ],
              entities=[REQUEST_ID]),
    ),
    "login": (
        record("login", 401, client_id=None, roles=(), purpose_of_use=(),
               network_address="2001:db8::7", description="bad credentials", request_id=None),
        event(type_=USER_AUTH,
              subtype=[{"system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "110122", "display": "Login"}],
              action="E", outcome="4", desc="denied: HTTP 401 Unauthorized: bad credentials",
              agents=[
                  {"type": {"coding": [{
                      "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                      "code": "IRCP", "display": "information recipient"}]},
                   "who": {"identifier": {"system": "https://fhir.medicore.example/sid/user",
                                          "value": "u-17"}},
                   "requestor": True},
                  {"type": coding(SRC), "requestor": False,
                   "network": {"address": "2001:db8::7", "type": "2"}},
                  server_agent(DST),
              ],
              entities=[]),
    ),
}
# fmt: on


def test_cases_cover_every_interaction() -> None:
    assert set(CASES) == {i.value for i in Interaction}


@pytest.mark.parametrize("name", sorted(CASES))
def test_event_fields_exact(name: str) -> None:
    rec, expected = CASES[name]
    built = build_audit_event(rec, server_id=SERVER, event_id="ev-1")
    assert built == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_event_validates_as_r4(name: str) -> None:
    built = build_audit_event(CASES[name][0], server_id=SERVER, event_id="ev-1")
    model = AuditEvent.model_validate(built)
    assert model.action == built["action"]
    assert len(model.agent) == len(built["agent"])


@pytest.mark.parametrize(
    ("status", "denied", "expected"),
    [
        (200, False, "0"),
        (201, False, "0"),
        (304, False, "0"),
        (400, False, "4"),
        (401, False, "4"),
        (403, False, "4"),
        (404, False, "4"),
        (404, True, "4"),
        (409, False, "4"),
        (500, False, "8"),
        (503, False, "8"),
    ],
)
def test_outcome_codes(status: int, denied: bool, expected: str) -> None:
    assert outcome_code(status, denied=denied) == expected


def test_denied_flag_on_404_marks_description() -> None:
    rec = record(
        "read",
        404,
        resource_type="Patient",
        resource_id="p9",
        denied=True,
        description="outside patient compartment",
    )
    built = build_audit_event(rec, server_id=SERVER, event_id="ev-2")
    assert built["outcome"] == "4"
    assert built["outcomeDesc"] == "denied: HTTP 404 Not Found: outside patient compartment"


def test_server_error_is_serious_failure_not_denied() -> None:
    built = build_audit_event(
        record("update", 500, resource_type="Patient", resource_id="p1"),
        server_id=SERVER,
        event_id="ev-3",
    )
    assert (built["outcome"], built["outcomeDesc"]) == ("8", "HTTP 500 Internal Server Error")


def test_anonymous_request_has_client_agent_without_who() -> None:
    rec = AccessRecord(
        interaction=Interaction.READ,
        recorded=WHEN,
        status=401,
        network_address="10.9.9.9",
        resource_type="Patient",
        resource_id="p1",
    )
    built = build_audit_event(rec, server_id=SERVER, event_id="ev-4")
    assert built["agent"][0] == {
        "type": coding(DST),
        "requestor": True,
        "network": {"address": "10.9.9.9", "type": "2"},
    }
    AuditEvent.model_validate(built)


def test_other_timezones_are_recorded_in_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    rec = record("read", recorded=datetime(2026, 3, 1, 17, 30, 15, 250000, tzinfo=seoul))
    assert build_audit_event(rec, server_id=SERVER, event_id="e")["recorded"] == WHEN_TEXT


def test_patient_ids_deduplicated_in_order() -> None:
    rec = record("search", patient_ids=["p2", "p1", "p2", ""], query="Observation")
    refs = [
        e["what"]["reference"]
        for e in build_audit_event(rec, server_id=SERVER, event_id="e")["entity"][:2]
    ]
    assert refs == ["Patient/p2", "Patient/p1"]


def test_built_event_does_not_share_mutable_state() -> None:
    first = build_audit_event(record("read"), server_id=SERVER, event_id="a")
    first["type"]["code"] = "tampered"
    first["source"]["type"][0]["code"] = "tampered"
    second = build_audit_event(record("read"), server_id=SERVER, event_id="b")
    assert second["type"]["code"] == "rest"
    assert second["source"]["type"][0]["code"] == "4"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"recorded": datetime(2026, 1, 1)}, ValueError),
        ({"status": 42}, ValueError),
        ({"patient_ids": "p1"}, TypeError),
        ({"resource_id": "x", "resource_type": None}, ValueError),
        ({"version_id": "2", "resource_type": "Patient", "resource_id": None}, ValueError),
    ],
)
def test_invalid_records_rejected(overrides: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        record("read", **overrides)


def test_unknown_interaction_rejected() -> None:
    with pytest.raises(ValueError):
        AccessRecord(interaction="teleport", recorded=WHEN, status=200)  # type: ignore[arg-type]
