"""Scopes, roles, tokens and access decisions for MediCore (a leaf: never imports fhir_server).

The names below are the ones the server wires in; the submodules (`auth.tokens`,
`auth.backend_services`, `auth.pkce`, `auth.passwords`, ...) hold the rest.
"""

from __future__ import annotations

from auth.compartment import compartment_patients, patient_criteria
from auth.decision import Decision, Principal, decide
from auth.errors import AuthError, InvalidScope, InvalidToken, OAuthError
from auth.keys import KeyRing
from auth.roles import RoleTable
from auth.scopes import ScopeSet, SearchConstraint

__all__ = [
    "AuthError",
    "Decision",
    "InvalidScope",
    "InvalidToken",
    "KeyRing",
    "OAuthError",
    "Principal",
    "RoleTable",
    "ScopeSet",
    "SearchConstraint",
    "compartment_patients",
    "decide",
    "patient_criteria",
]
