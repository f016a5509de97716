"""The guard's decision on one resource: the same criteria the stores compile, evaluated on
the resource's index entries (reads answer 404 outside them, writes 403)."""

from __future__ import annotations

from typing import Any

import pytest

from auth.decision import Principal
from auth.scopes import ScopeSet
from fhir_server.resources.access import PrincipalGuard
from fhir_server.resources.errors import FhirError
from fhir_server.search.registry import SearchRegistry

LAB_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
LAB = f"{LAB_SYSTEM}|laboratory"
REGISTRY = SearchRegistry.default()


def guard(scopes: str, patient: str | None = "p1", role: str = "doctor") -> PrincipalGuard:
    principal = Principal(
        subject="doctor001",
        role=role,
        client_id="app",
        scopes=ScopeSet.parse(scopes),
        patient=patient,
    )
    return PrincipalGuard(principal, REGISTRY)


def obs(patient: str, category: str = "laboratory", **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{patient}"},
        "category": [{"coding": [{"system": LAB_SYSTEM, "code": category}]}],
        **more,
    }


def status_of(g: PrincipalGuard, interaction: str, resource: dict[str, Any]) -> int:
    try:
        g.require(interaction, resource["resourceType"], resource)
    except FhirError as exc:
        assert "p2" not in exc.diagnostics  # no patient identifiers in messages
        return exc.status
    return 200


@pytest.mark.parametrize(
    ("interaction", "resource", "status"),
    [
        ("read", obs("p1"), 200),
        ("vread", obs("p1"), 200),
        ("read", obs("p2"), 404),  # outside the compartment: same answer as a missing id
        ("history-instance", obs("p2"), 404),
        ("create", obs("p1"), 200),
        ("create", obs("p2"), 403),  # writing into another patient's record
        ("update", obs("p2"), 403),
        ("delete", obs("p2"), 403),
        # a performer is a participant, not whom the observation is about
        ("read", obs("p2", performer=[{"reference": "Patient/p1"}]), 404),
        ("create", obs("p1", performer=[{"reference": "Patient/p2"}]), 200),
        # an absolute URL is not this server's patient
        ("read", {**obs("p1"), "subject": {"reference": "http://x.org/fhir/Patient/p1"}}, 404),
    ],
)
def test_patient_scope_confined_to_the_patient(
    interaction: str, resource: dict[str, Any], status: int
) -> None:
    assert status_of(guard("patient/Observation.cruds"), interaction, resource) == status


def test_patient_scope_reads_own_patient_resource_only() -> None:
    g = guard("patient/Patient.rs")
    assert status_of(g, "read", {"resourceType": "Patient", "id": "p1"}) == 200
    assert status_of(g, "read", {"resourceType": "Patient", "id": "p2"}) == 404


def test_user_scope_beside_patient_scope_reads_anyone() -> None:
    g = guard("patient/Observation.rs user/Observation.r")
    assert status_of(g, "read", obs("p2")) == 200


def test_query_restricted_scope_on_a_read() -> None:
    g = guard(f"patient/Observation.rs?category={LAB}")
    assert status_of(g, "read", obs("p1")) == 200
    assert status_of(g, "read", obs("p1", "vital-signs")) == 404
    assert status_of(g, "create", obs("p1")) == 403  # no 'c'


def test_patient_context_write_about_two_patients_is_refused() -> None:
    g = guard("patient/Provenance.cruds")
    provenance = {
        "resourceType": "Provenance",
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/x"}}],
        "target": [{"reference": "Patient/p1"}, {"reference": "Patient/p2"}],
    }
    assert status_of(g, "read", provenance) == 200  # about p1 (too)
    assert status_of(g, "create", provenance) == 403  # but also about p2


def test_a_scope_query_the_server_cannot_evaluate_grants_nothing() -> None:
    g = guard("patient/Observation.rs?no-such-param=1")
    assert status_of(g, "read", obs("p1")) == 404


# Token semantics of a scope's query restriction (moved here with the one evaluator).
@pytest.mark.parametrize(
    ("query", "category", "expected"),
    [
        (LAB, "laboratory", True),
        (LAB, "vital-signs", False),
        ("laboratory", "laboratory", True),
        (f"{LAB_SYSTEM}|", "vital-signs", True),
        ("http://other.example/cs|laboratory", "laboratory", False),
        ("|laboratory", "laboratory", False),  # "|code" means "code with no system"
    ],
)
def test_query_restriction_checks_the_resource(query: str, category: str, expected: bool) -> None:
    g = guard(f"patient/Observation.rs?category={query}")
    assert status_of(g, "read", obs("p1", category)) == (200 if expected else 404)


def test_query_restriction_on_missing_element_fails_closed() -> None:
    g = guard("user/Observation.rs?category=laboratory")
    bare = {k: v for k, v in obs("p1").items() if k != "category"}
    assert status_of(g, "read", bare) == 404


def ref(text: str) -> dict[str, str]:
    return {"reference": text}


# Whom a resource is about, for a patient token of p1. The three marked cases were in
# the R4 patient compartment and are not about p1: they are no longer readable by it.
ABOUT_P1: list[tuple[dict[str, Any], bool]] = [
    ({"resourceType": "Patient", "id": "p1"}, True),
    ({"resourceType": "Patient", "id": "p2"}, False),
    ({"resourceType": "Patient", "id": "p2", "link": [{"other": ref("Patient/p1")}]}, False),  # was
    ({"resourceType": "Encounter", "subject": ref("Patient/p1")}, True),
    ({"resourceType": "Encounter", "subject": ref("Patient/p2")}, False),
    ({"resourceType": "Encounter", "subject": ref("Group/p1")}, False),
    ({"resourceType": "MedicationRequest", "subject": ref("Patient/p1")}, True),
    ({"resourceType": "MedicationRequest", "requester": ref("Patient/p1")}, False),
    ({"resourceType": "Observation", "subject": ref("Patient/p1")}, True),
    (
        {
            "resourceType": "Observation",
            "subject": ref("Patient/p2"),
            "performer": [ref("Practitioner/d1"), ref("Patient/p1")],
        },
        False,  # was
    ),
    ({"resourceType": "Observation", "subject": ref("Patient/p10")}, False),
    ({"resourceType": "Observation", "subject": ref("Device/p1")}, False),
    (
        {"resourceType": "Observation", "subject": ref("https://h.example/fhir/Patient/p1")},
        False,
    ),  # was
    ({"resourceType": "Observation", "subject": ref("Patient/p1/_history/3")}, True),
    ({"resourceType": "Observation", "subject": {"display": "somebody"}}, False),
    ({"resourceType": "Observation"}, False),
    ({"resourceType": "Provenance", "target": [ref("Observation/o1"), ref("Patient/p1")]}, True),
    ({"resourceType": "Provenance", "target": [ref("Observation/o1")]}, False),
]


@pytest.mark.parametrize(("resource", "expected"), ABOUT_P1)
def test_a_patient_token_reads_what_is_about_its_patient(
    resource: dict[str, Any], expected: bool
) -> None:
    g = guard("patient/*.rs")
    assert status_of(g, "read", resource) == (200 if expected else 404)
