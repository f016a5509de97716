"""Patient compartment membership per R4 CompartmentDefinition-patient."""

from __future__ import annotations

from typing import Any

import pytest

from auth.compartment import (
    compartment_patients,
    compartment_search_params,
    in_patient_compartment,
    patient_id_of_reference,
)


def ref(text: str) -> dict[str, str]:
    return {"reference": text}


# (resource, patient id, expected)
CASES: list[tuple[dict[str, Any], str, bool]] = [
    ({"resourceType": "Patient", "id": "p1"}, "p1", True),
    ({"resourceType": "Patient", "id": "p2"}, "p1", False),
    ({"resourceType": "Patient", "id": "p2", "link": [{"other": ref("Patient/p1")}]}, "p1", True),
    ({"resourceType": "Encounter", "subject": ref("Patient/p1")}, "p1", True),
    ({"resourceType": "Encounter", "subject": ref("Patient/p2")}, "p1", False),
    ({"resourceType": "Encounter", "subject": ref("Group/p1")}, "p1", False),
    ({"resourceType": "MedicationRequest", "subject": ref("Patient/p1")}, "p1", True),
    ({"resourceType": "MedicationRequest", "requester": ref("Patient/p1")}, "p1", False),
    ({"resourceType": "Observation", "subject": ref("Patient/p1")}, "p1", True),
    (
        {
            "resourceType": "Observation",
            "subject": ref("Patient/p2"),
            "performer": [ref("Practitioner/d1"), ref("Patient/p1")],
        },
        "p1",
        True,
    ),
    ({"resourceType": "Observation", "subject": ref("Patient/p10")}, "p1", False),
    ({"resourceType": "Observation", "subject": ref("Device/p1")}, "p1", False),
    (
        {"resourceType": "Observation", "subject": ref("https://h.example/fhir/Patient/p1")},
        "p1",
        True,
    ),
    ({"resourceType": "Observation", "subject": ref("Patient/p1/_history/3")}, "p1", True),
    ({"resourceType": "Observation", "subject": {"display": "somebody"}}, "p1", False),
    ({"resourceType": "Observation"}, "p1", False),
    (
        {"resourceType": "Provenance", "target": [ref("Observation/o1"), ref("Patient/p1")]},
        "p1",
        True,
    ),
    ({"resourceType": "Provenance", "target": [ref("Observation/o1")]}, "p1", False),
    ({"resourceType": "AuditEvent", "entity": [{"what": ref("Patient/p1")}]}, "p1", True),
    ({"resourceType": "AuditEvent", "agent": [{"who": ref("Patient/p1")}]}, "p1", True),
    ({"resourceType": "AuditEvent", "agent": [{"who": ref("Practitioner/p1")}]}, "p1", False),
    ({"resourceType": "Medication", "subject": ref("Patient/p1")}, "p1", False),
    ({"subject": ref("Patient/p1")}, "p1", False),
]


@pytest.mark.parametrize(("resource", "patient", "expected"), CASES)
def test_in_patient_compartment(resource: dict[str, Any], patient: str, expected: bool):
    assert in_patient_compartment(resource, patient) is expected


@pytest.mark.parametrize(
    ("rtype", "params"),
    [
        ("Patient", ["link"]),
        ("Encounter", ["patient"]),
        ("MedicationRequest", ["subject"]),
        ("Observation", ["subject", "performer"]),
        ("Provenance", ["patient"]),
        ("AuditEvent", ["patient"]),
        ("Medication", []),
    ],
)
def test_compartment_search_params(rtype: str, params: list[str]):
    assert compartment_search_params(rtype) == params


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ref("Patient/abc"), "abc"),
        (ref("Patient/"), None),
        (ref("Patient"), None),
        ({"reference": 5}, None),
        ("Patient/abc", None),
        (ref("#contained"), None),
    ],
)
def test_patient_id_of_reference(value: object, expected: str | None):
    assert patient_id_of_reference(value) == expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {
                "resourceType": "Patient",
                "id": "p1",
                "link": [{"other": {"reference": "Patient/p2"}}],
            },
            ["p1", "p2"],
        ),
        (
            {"resourceType": "Observation", "subject": {"reference": "http://h/fhir/Patient/p1"}},
            ["p1"],
        ),
        (
            {
                "resourceType": "Observation",
                "subject": {"reference": "Patient/p1/_history/3"},
                "performer": [{"reference": "Patient/p2"}, {"reference": "Practitioner/d"}],
            },
            ["p1", "p2"],
        ),
        (
            {
                "resourceType": "AuditEvent",
                "agent": [{"who": {"reference": "Patient/p3"}}],
                "entity": [
                    {"what": {"reference": "Patient/p1"}},
                    {"what": {"reference": "Patient/p3"}},
                ],
            },
            ["p3", "p1"],
        ),
        ({"resourceType": "Encounter", "subject": {"reference": "Group/g"}}, []),
        ({"resourceType": "Organization", "id": "o"}, []),
    ],
)
def test_compartment_patients(resource: dict[str, Any], expected: list[str]) -> None:
    """Every patient a resource is about, each once: what the audit trail names."""
    assert compartment_patients(resource) == expected
