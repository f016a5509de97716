"""Decisions for patient-context tokens, query-restricted scopes and missing tokens."""

from __future__ import annotations

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


def test_no_token_is_401():
    d = decide(None, "read", "Patient")
    assert (d.allowed, d.status, d.missing_scope) == (False, 401, None)


def test_patient_scope_without_patient_context_is_403():
    d = decide(doctor("patient/Observation.rs", patient=None), "search", "Observation")
    assert (d.allowed, d.status) == (False, 403)
    assert "launch context" in d.reason


def test_user_scope_beside_patient_scope():
    p = doctor("patient/Observation.rs user/Observation.r")
    assert decide(p, "read", "Observation").constraints == ()
    # search still needs 's', which only the patient scope gives: narrowed
    assert decide(p, "search", "Observation").constraints == (SearchConstraint(patient="p1"),)


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
    assert d.constraints == constraints


def test_registered_query_restrictions_join_the_constraints():
    p = Principal(
        subject="c",
        role="system",
        client_id="c",
        scopes=ScopeSet.parse("system/Observation.rs"),
        registered_scopes=ScopeSet.parse(f"system/Observation.rs?category={LAB}"),
    )
    d = decide(p, "search", "Observation")
    assert d.constraints == (SearchConstraint(query=(("category", LAB),)),)


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
    assert decide(p, "search", "Observation").constraints == (SearchConstraint(patient="p1"),)
    with pytest.raises(InvalidToken):
        Principal.from_claims({"sub": "x", "scope": "user/Patient.sr"})


def test_operations():
    it = Principal(subject="it", role="itadmin", client_id="c", scopes=ScopeSet())
    assert decide_operation(it, "backup").allowed
    assert decide_operation(doctor("user/*.*"), "backup").status == 403
    assert decide_operation(None, "backup").status == 401
    assert not decide(it, "read", "Patient").allowed
