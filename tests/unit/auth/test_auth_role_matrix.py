"""Every role x resource type x interaction against the hospital's rules in issue 5.

The expectations are typed in by hand from the issue's prose (not read from roles.json):

- doctor: full clinical read/write, including MedicationRequest;
- nurse: reads all clinical data, creates/updates Observation and Patient, never creates
  or changes a MedicationRequest;
- admin (administrative staff): Patient demographics and Encounter only (registration,
  appointments), no Observation or MedicationRequest; no deletes (our reading: corrections
  are updates);
- itadmin: no clinical data at all;
- auditor: AuditEvent read/search only;
- system: capped by the scopes registered for its client.

Interaction -> letter, from the issue: c = create; r = read, vread, instance history;
u = update, patch; d = delete; s = search, type and system history.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest

from auth.decision import Principal, decide
from auth.roles import RoleTable
from auth.scopes import ScopeSet

TYPES = ("Patient", "Encounter", "MedicationRequest", "Observation", "Provenance", "AuditEvent")
LETTER = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search": "s",
    "history-type": "s",
    "history-system": "s",
}

# role -> allowed letters per type, in the order of TYPES
STAFF = {
    #            Patient  Encounter MedRequest Observation Provenance AuditEvent
    "doctor":  ("cruds", "cruds",  "cruds",   "cruds",    "cruds",   ""),
    "nurse":   ("crus",  "rs",     "rs",      "crus",     "rs",      ""),
    "admin":   ("crus",  "crus",   "",        "",         "",        ""),
    "itadmin": ("",      "",       "",        "",         "",        ""),
    "auditor": ("",      "",       "",        "",         "",        "rs"),
}  # fmt: skip

# system clients: registered scopes -> allowed letters per type (same order)
LAB_INTERFACE = "system/Patient.cru system/Encounter.cru system/Observation.cru"
PARTNER_HOSPITAL = "system/Patient.rs system/Encounter.rs system/Observation.rs"
PHARMACY_INTERFACE = "system/MedicationRequest.cruds system/Patient.r"
SYSTEMS = {
    LAB_INTERFACE:      ("cru",   "cru",    "",        "cru",      "",        ""),
    PARTNER_HOSPITAL:   ("rs",    "rs",     "",        "rs",       "",        ""),
    PHARMACY_INTERFACE: ("r",     "",       "cruds",   "",         "",        ""),
}  # fmt: skip

ROLES = RoleTable.load()


def _cases(table: Mapping[str, tuple[str, ...]]):
    for key, letters in table.items():
        for (rtype, allowed), interaction in itertools.product(
            zip(TYPES, letters, strict=True), LETTER
        ):
            yield pytest.param(
                key,
                rtype,
                interaction,
                LETTER[interaction] in allowed,
                id=f"{key}-{rtype}-{interaction}",
            )


@pytest.mark.parametrize(("role", "rtype", "interaction", "expected"), list(_cases(STAFF)))
def test_staff_matrix(role: str, rtype: str, interaction: str, expected: bool):
    # the broadest possible token: only the role ceiling can refuse
    principal = Principal(
        subject=f"{role}001", role=role, client_id="ehr", scopes=ScopeSet.parse("user/*.cruds")
    )
    d = decide(principal, interaction, rtype, roles=ROLES)
    assert d.allowed is expected
    assert d.status == (200 if expected else 403)
    if not expected:
        assert role in d.reason


@pytest.mark.parametrize(("registered", "rtype", "interaction", "expected"), list(_cases(SYSTEMS)))
def test_system_matrix(registered: str, rtype: str, interaction: str, expected: bool):
    principal = Principal(
        subject="client-1",
        role="system",
        client_id="client-1",
        scopes=ScopeSet.parse("system/*.cruds"),
        registered_scopes=ScopeSet.parse(registered),
    )
    d = decide(principal, interaction, rtype, roles=ROLES)
    assert (d.allowed, d.status) == (expected, 200 if expected else 403)


def test_system_role_without_registered_scopes_gets_nothing():
    principal = Principal(
        subject="c", role="system", client_id="c", scopes=ScopeSet.parse("system/*.cruds")
    )
    assert not decide(principal, "read", "Patient", roles=ROLES).allowed


# token narrower than the ceiling: (role, token scopes, type, interaction, expected status)
INTERSECTION = [
    ("nurse", "user/*.read", "Observation", "read", 200),
    ("nurse", "user/*.read", "Observation", "create", 403),  # scope missing, ceiling allows
    ("nurse", "user/*.cruds", "MedicationRequest", "create", 403),  # ceiling refuses
    ("nurse", "user/MedicationRequest.cruds", "MedicationRequest", "update", 403),
    ("doctor", "user/Observation.rs", "Observation", "search", 200),
    ("doctor", "user/Observation.rs", "Patient", "read", 403),
    ("doctor", "user/Observation.rs", "Observation", "delete", 403),
    ("admin", "user/Patient.cruds", "Patient", "delete", 403),
    ("auditor", "user/*.cruds", "AuditEvent", "search", 200),
    ("auditor", "user/AuditEvent.r", "AuditEvent", "search", 403),
    ("auditor", "user/*.cruds", "AuditEvent", "create", 403),
    ("unknown-role", "user/*.cruds", "Patient", "read", 403),
]


@pytest.mark.parametrize(("role", "scopes", "rtype", "interaction", "status"), INTERSECTION)
def test_scopes_intersect_role_ceiling(
    role: str, scopes: str, rtype: str, interaction: str, status: int
):
    principal = Principal(subject="u", role=role, client_id="ehr", scopes=ScopeSet.parse(scopes))
    d = decide(principal, interaction, rtype, roles=ROLES)
    assert (d.allowed, d.status) == (status == 200, status)


def test_missing_scope_is_reported_when_the_role_would_allow():
    principal = Principal(
        subject="n", role="nurse", client_id="ehr", scopes=ScopeSet.parse("user/*.read")
    )
    d = decide(principal, "create", "Observation", roles=ROLES)
    assert d.missing_scope == "user/Observation.c"
    assert "user/Observation.c" in d.reason
