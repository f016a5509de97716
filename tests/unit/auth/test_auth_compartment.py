"""Patient compartment membership per R4 CompartmentDefinition-patient."""

from __future__ import annotations

from typing import Any

import pytest

from auth.compartment import (
    compartment_patients,
    patient_id_of_reference,
)


def ref(text: str) -> dict[str, str]:
    return {"reference": text}


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
