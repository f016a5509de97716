"""The role table is configuration: loadable from any file, validated with a pointer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auth.decision import Principal, decide
from auth.roles import RoleConfigError, RoleTable
from auth.scopes import ScopeSet


def test_shipped_table_has_the_issue_roles():
    assert set(RoleTable.load().roles) == {
        "doctor",
        "nurse",
        "admin",
        "itadmin",
        "auditor",
        "system",
    }


@pytest.fixture
def table(tmp_path: Path) -> RoleTable:
    """A roles file where a nurse may read and search MedicationRequests only."""
    custom = tmp_path / "roles.json"
    custom.write_text(
        json.dumps({"roles": {"nurse": {"resources": {"MedicationRequest": "rs"}}}}),
        encoding="utf-8",
    )
    return RoleTable.load(custom)


def test_loaded_from_another_file_changes_decisions(table: RoleTable):
    nurse = Principal(subject="n", role="nurse", client_id="c", scopes=ScopeSet.parse("user/*.*"))
    assert decide(nurse, "read", "MedicationRequest", roles=table).allowed
    assert not decide(nurse, "read", "Patient", roles=table).allowed
    assert not decide(nurse, "read", "Patient", roles=table).missing_scope


def test_principal_from_claims_carries_its_tables_ceiling(table: RoleTable):
    claims = {"sub": "n", "role": "nurse", "client_id": "c", "scope": "user/*.rs"}
    nurse = Principal.from_claims(claims, roles=table)
    # No `roles=` at the call: the table the principal was authenticated with decides.
    assert decide(nurse, "read", "MedicationRequest").allowed
    assert not decide(nurse, "read", "Patient").allowed
    stranger = Principal.from_claims({**claims, "role": "doctor"}, roles=table)
    assert decide(stranger, "read", "Patient").status == 403  # unknown to this table
    assert table.ceiling("nurse") is table.ceiling("nurse")  # built once, not per decision


@pytest.mark.parametrize(
    ("doc", "expression"),
    [
        ({}, "roles"),
        ({"roles": []}, "roles"),
        ({"roles": {"Doctor": {"resources": {}}}}, "roles.Doctor"),
        ({"roles": {"x": {"resources": {"Patient": "rc"}}}}, "roles.x.resources.Patient"),
        ({"roles": {"x": {"resources": {"Patient": "rrs"}}}}, "roles.x.resources.Patient"),
        ({"roles": {"x": {"resources": {"Patient": ""}}}}, "roles.x.resources.Patient"),
        ({"roles": {"x": {"resources": {"patient": "r"}}}}, "roles.x.resources.patient"),
        ({"roles": {"x": {}}}, "roles.x.resources"),
        ({"roles": {"x": {"ceiling": "anything"}}}, "roles.x.ceiling"),
        ({"roles": {"x": {"resources": {}, "operations": "backup"}}}, "roles.x.operations"),
    ],
)
def test_bad_role_files_name_the_member(doc: object, expression: str):
    with pytest.raises(RoleConfigError) as info:
        RoleTable.from_dict(doc)
    assert info.value.expression == expression


def test_unreadable_file(tmp_path: Path):
    bad = tmp_path / "roles.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RoleConfigError):
        RoleTable.load(bad)


@pytest.mark.parametrize(
    ("role", "requested", "granted"),
    [
        (
            "nurse",
            "user/*.cruds",
            "user/Patient.crus user/Encounter.rs user/MedicationRequest.rs "
            "user/Observation.crus user/Provenance.rs",
        ),
        ("nurse", "user/MedicationRequest.cud openid", "openid"),
        (
            "admin",
            "patient/*.read launch/patient",
            "launch/patient patient/Patient.rs patient/Encounter.rs",
        ),
        ("auditor", "user/*.cruds", "user/AuditEvent.rs"),
        ("itadmin", "user/*.cruds", ""),
        (
            "doctor",
            "user/Observation.rs?category=laboratory",
            "user/Observation.rs?category=laboratory",
        ),
    ],
)
def test_clamp_applies_the_ceiling_to_requested_scopes(role: str, requested: str, granted: str):
    ceiling = RoleTable.load().ceiling(role)
    assert str(ceiling.clamp(ScopeSet.parse(requested))) == granted


def test_clamp_for_registered_scopes_keeps_their_query():
    ceiling = RoleTable.load().ceiling(
        "system", registered=ScopeSet.parse("system/Observation.rs?category=laboratory")
    )
    clamped = ceiling.clamp(ScopeSet.parse("system/*.cruds user/*.cruds"))
    assert str(clamped) == "system/Observation.rs?category=laboratory"


def test_operations_per_role():
    table = RoleTable.load()
    assert "backup" in table.ceiling("itadmin").operations
    assert "backup" not in table.ceiling("doctor").operations
    assert table.uses_registered_scopes("system")
    assert not table.uses_registered_scopes("doctor")


@pytest.mark.parametrize(
    ("role", "scopes", "allowed"),
    [
        ("doctor", "system/*.cruds", False),  # staff never act as a system
        ("doctor", "user/*.cruds", True),
        ("doctor", "patient/*.cruds", True),
        ("system", "user/*.cruds", False),  # a system client never acts as a user
        ("system", "system/*.cruds", True),
    ],
)
def test_scope_context_must_fit_the_role(role: str, scopes: str, allowed: bool):
    p = Principal(
        subject="s",
        role=role,
        client_id="c",
        scopes=ScopeSet.parse(scopes),
        patient="p1",
        registered_scopes=ScopeSet.parse("system/Patient.rs"),
    )
    assert decide(p, "read", "Patient").allowed is allowed
    assert (
        bool(
            RoleTable.load()
            .ceiling(role, registered=p.registered_scopes)
            .clamp(p.scopes)
            .resource_scopes
        )
        is allowed
    )
