"""Decisions for patient-context tokens, query-restricted scopes and missing tokens."""

from __future__ import annotations

from typing import Any

import pytest

from auth.decision import Principal, decide, decide_operation
from auth.errors import InvalidToken
from auth.scopes import ScopeSet, SearchConstraint

LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"


def doctor(scopes: str, patient: str | None = "p1") -> Principal:
    return Principal(
        subject="doctor001",
        role="doctor",
        client_id="app",
        scopes=ScopeSet.parse(scopes),
        patient=patient,
    )


def obs(patient: str, category: str = "laboratory") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "subject": {"reference": f"Patient/{patient}"},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
    }


def test_no_token_is_401():
    d = decide(None, "read", "Patient")
    assert (d.allowed, d.status, d.missing_scope) == (False, 401, None)


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
    ],
)
def test_patient_scope_confined_to_compartment(
    interaction: str, resource: dict[str, Any], status: int
):
    d = decide(doctor("patient/Observation.cruds"), interaction, "Observation", resource)
    assert (d.allowed, d.status) == (status == 200, status)
    if status != 200:
        assert "p2" not in d.reason  # no patient identifiers in messages


def test_patient_scope_reads_own_patient_resource_only():
    p = doctor("patient/Patient.rs")
    assert decide(p, "read", "Patient", {"resourceType": "Patient", "id": "p1"}).allowed
    assert decide(p, "read", "Patient", {"resourceType": "Patient", "id": "p2"}).status == 404


def test_patient_scope_without_patient_context_is_403():
    d = decide(doctor("patient/Observation.rs", patient=None), "search", "Observation")
    assert (d.allowed, d.status) == (False, 403)
    assert "launch context" in d.reason


def test_user_scope_beside_patient_scope_is_not_confined():
    p = doctor("patient/Observation.rs user/Observation.r")
    assert decide(p, "read", "Observation", obs("p2")).allowed
    # search still needs 's', which only the patient scope gives: narrowed
    assert decide(p, "search", "Observation").search == (SearchConstraint(patient="p1"),)


@pytest.mark.parametrize(
    ("scopes", "constraints"),
    [
        ("user/Observation.rs", ()),
        ("patient/Observation.rs", (SearchConstraint(patient="p1"),)),
        (
            f"patient/Observation.rs?category={LAB}",
            (SearchConstraint(patient="p1", query=(("category", LAB),)),),
        ),
        (
            f"user/Observation.rs?category={LAB} patient/Observation.rs",
            (
                SearchConstraint(query=(("category", LAB),)),
                SearchConstraint(patient="p1"),
            ),
        ),
        (f"user/Observation.rs?category={LAB} user/*.rs", ()),
    ],
)
def test_search_constraints(scopes: str, constraints: tuple[SearchConstraint, ...]):
    d = decide(doctor(scopes), "search", "Observation")
    assert d.allowed
    assert d.search == constraints


def test_query_restricted_scope_on_a_read():
    p = doctor(f"patient/Observation.rs?category={LAB}")
    assert decide(p, "read", "Observation", obs("p1")).allowed
    assert decide(p, "read", "Observation", obs("p1", "vital-signs")).status == 404
    assert decide(p, "create", "Observation", obs("p1")).status == 403  # no 'c'


def test_from_claims():
    p = Principal.from_claims(
        {
            "sub": "nurse001",
            "role": "nurse",
            "client_id": "app",
            "scope": "launch/patient patient/Observation.rs",
            "patient": "p1",
            "fhirUser": "Practitioner/n1",
            "purpose_of_use": ["TREAT"],
        }
    )
    assert (p.subject, p.role, p.patient, p.fhir_user) == (
        "nurse001",
        "nurse",
        "p1",
        "Practitioner/n1",
    )
    assert p.purpose_of_use == ("TREAT",)
    assert decide(p, "search", "Observation").search == (SearchConstraint(patient="p1"),)
    with pytest.raises(InvalidToken):
        Principal.from_claims({"sub": "x", "scope": "user/Patient.sr"})


def test_operations():
    it = Principal(subject="it", role="itadmin", client_id="c", scopes=ScopeSet())
    assert decide_operation(it, "backup").allowed
    assert decide_operation(doctor("user/*.*"), "backup").status == 403
    assert decide_operation(None, "backup").status == 401
    assert not decide(it, "read", "Patient").allowed
