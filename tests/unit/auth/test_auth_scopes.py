"""Scope grammar and scope checks, as tables taken from SMART App Launch 2.0."""

from __future__ import annotations

import pytest

from auth.errors import InvalidScope
from auth.scopes import ResourceScope, ScopeSet

LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

# text -> (context, type, letters, query)
VALID = [
    ("patient/Observation.rs", ("patient", "Observation", "rs", ())),
    ("user/Patient.cruds", ("user", "Patient", "cruds", ())),
    ("system/*.r", ("system", "*", "r", ())),
    ("user/Encounter.c", ("user", "Encounter", "c", ())),
    ("user/MedicationRequest.ud", ("user", "MedicationRequest", "ud", ())),
    ("patient/*.cs", ("patient", "*", "cs", ())),
    # v1 forms
    ("patient/Observation.read", ("patient", "Observation", "rs", ())),
    ("user/Patient.write", ("user", "Patient", "cud", ())),
    ("system/*.*", ("system", "*", "cruds", ())),
    ("user/*.read", ("user", "*", "rs", ())),
    # query restricted
    (
        f"patient/Observation.rs?category={LAB}",
        ("patient", "Observation", "rs", (("category", LAB),)),
    ),
    (
        "user/Observation.rs?status=final&category=vital-signs",
        ("user", "Observation", "rs", (("category", "vital-signs"), ("status", "final"))),
    ),
]

INVALID = [
    "patient/Observation.sr",  # out of order
    "user/Patient.rc",  # out of order
    "user/Patient.crr",  # duplicate
    "user/Patient.x",  # unknown letter
    "user/Patient.rsx",  # unknown letter
    "user/Patient.",  # no permissions
    "user/Patient.readwrite",  # not a v1 keyword
    "admin/Patient.rs",  # unknown context
    "user/patient.rs",  # type must be capitalised
    "user/Patient",  # no permissions part
    "Patient.rs",  # no context
    "patient/Observation.read?category=laboratory",  # v1 with a query
    "patient/Observation.rs?category",  # query without value
    "patient/Observation.rs?category=",  # empty value
    "patient/Observation.rs?=x",  # empty name
    "launch/foo",  # unknown launch scope
    "superuser",  # unknown scope
    "openid2",  # unknown scope
]

OTHER = ["openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access"]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_valid_scope(text: str, expected: tuple[str, str, str, tuple[tuple[str, str], ...]]):
    s = ResourceScope.parse(text)
    assert (s.context, s.resource_type, s.letters, s.query) == expected


@pytest.mark.parametrize("text", INVALID)
def test_parse_invalid_scope(text: str):
    with pytest.raises(InvalidScope) as info:
        ScopeSet.parse(f"openid {text}")
    assert info.value.scope == text
    assert info.value.expression == "scope"


@pytest.mark.parametrize("name", OTHER)
def test_launch_and_identity_scopes(name: str):
    scopes = ScopeSet.parse(f"{name} user/Patient.r")
    assert name in scopes.other
    assert name in scopes
    assert [str(s) for s in scopes.resource_scopes] == ["user/Patient.r"]


def test_scope_string_round_trip_and_dedup():
    scopes = ScopeSet.parse("user/Patient.read  user/Patient.rs openid")
    assert str(scopes) == "openid user/Patient.rs"
    assert ScopeSet.parse("") == ScopeSet()


# (scopes, interaction, type, expected)
ALLOWS = [
    ("user/Patient.r", "read", "Patient", True),
    ("user/Patient.r", "vread", "Patient", True),
    ("user/Patient.r", "history-instance", "Patient", True),
    ("user/Patient.r", "search", "Patient", False),
    ("user/Patient.s", "search", "Patient", True),
    ("user/Patient.s", "history-type", "Patient", True),
    ("user/Patient.s", "history-system", "Patient", True),
    ("user/Patient.s", "read", "Patient", False),
    ("user/Patient.c", "create", "Patient", True),
    ("user/Patient.c", "update", "Patient", False),
    ("user/Patient.u", "update", "Patient", True),
    ("user/Patient.u", "patch", "Patient", True),
    ("user/Patient.u", "delete", "Patient", False),
    ("user/Patient.d", "delete", "Patient", True),
    ("user/Patient.cruds", "read", "Observation", False),
    ("user/*.r", "read", "Observation", True),
    ("user/*.write", "create", "Encounter", True),
    ("user/*.write", "read", "Encounter", False),
    ("system/*.*", "delete", "Provenance", True),
    ("openid fhirUser", "read", "Patient", False),
]


@pytest.mark.parametrize(("scopes", "interaction", "rtype", "expected"), ALLOWS)
def test_allows_table(scopes: str, interaction: str, rtype: str, expected: bool):
    assert ScopeSet.parse(scopes).allows(interaction, rtype) is expected


@pytest.mark.parametrize(
    ("scopes", "interaction", "rtype", "missing"),
    [
        ("user/Patient.r", "update", "Patient", "user/Patient.u"),
        ("patient/Observation.r", "search", "Observation", "patient/Observation.s"),
        ("system/Patient.rs", "create", "Encounter", "system/Encounter.c"),
        ("openid", "delete", "Observation", "user/Observation.d"),
    ],
)
def test_missing_scope_names_the_scope_that_would_allow(
    scopes: str, interaction: str, rtype: str, missing: str
):
    assert ScopeSet.parse(scopes).missing_scope(interaction, rtype) == missing


@pytest.mark.parametrize(
    ("requested", "registered", "refused"),
    [
        ("system/Patient.rs", "system/Patient.rs", []),
        ("system/Patient.r", "system/*.rs", []),
        ("system/Patient.rs", "system/Patient.r", ["system/Patient.rs"]),
        ("system/*.rs", "system/Patient.rs", ["system/*.rs"]),
        ("user/Patient.r", "system/Patient.rs", ["user/Patient.r"]),
        (f"system/Observation.rs?category={LAB}", "system/Observation.rs", []),
        (
            "system/Observation.rs",
            f"system/Observation.rs?category={LAB}",
            ["system/Observation.rs"],
        ),
    ],
)
def test_not_covered_by(requested: str, registered: str, refused: list[str]):
    assert ScopeSet.parse(requested).not_covered_by(ScopeSet.parse(registered)) == refused


def test_a_scope_with_a_trailing_newline_is_invalid():
    with pytest.raises(InvalidScope):
        ResourceScope.parse("patient/Observation.rs\n")
