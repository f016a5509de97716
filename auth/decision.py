"""One access decision: token scopes ∩ role ceiling, confined to the patient compartment.

How the server uses it, per interaction:

1. `decide(principal, interaction, type)` before touching the store (401/403 early).
2. For read/vread/history-instance/update/patch/delete: fetch, then
   `decide(principal, interaction, type, resource=stored)`; for create/update also check
   the new body. Reads outside the compartment or query restriction answer 404 (the same
   answer as a missing id, so a 403 never tells which data exists); writes answer 403.
3. For search and history: narrow the query with `Decision.search` (OR of constraints; an
   empty tuple means unrestricted). `_include`/`_revinclude` hits are each checked with
   `decide(principal, "read", type, resource=hit)` and dropped when not allowed.
4. Batch/transaction entries: one decision per entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from auth.compartment import in_patient_compartment
from auth.errors import InvalidScope, InvalidToken
from auth.roles import RoleCeiling, RoleTable
from auth.scopes import ResourceScope, ScopeSet, SearchConstraint, letter_for


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified token reduced to what decisions need."""

    subject: str
    role: str
    client_id: str
    scopes: ScopeSet
    patient: str | None = None
    fhir_user: str | None = None
    purpose_of_use: tuple[str, ...] = ()
    registered_scopes: ScopeSet | None = None  # ceiling of "registered-scopes" roles
    #: The role's ceiling in the server's role table, resolved once at authentication so
    #: that every decision on this principal uses the configured table, not the shipped one.
    ceiling: RoleCeiling | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_claims(
        cls,
        claims: Mapping[str, Any],
        *,
        registered_scopes: ScopeSet | None = None,
        roles: RoleTable | None = None,
    ) -> Principal:
        """Build from verified access-token claims; bad scope text is an invalid token.

        With `roles` (the server's table) the role's ceiling is resolved here, once.
        """
        try:
            scopes = ScopeSet.parse(str(claims.get("scope", "")))
        except InvalidScope:
            raise InvalidToken("token carries an invalid scope") from None
        pou = claims.get("purpose_of_use", ())
        role = str(claims.get("role", ""))
        return cls(
            subject=str(claims.get("sub", "")),
            role=role,
            client_id=str(claims.get("client_id", "")),
            scopes=scopes,
            patient=claims.get("patient") if isinstance(claims.get("patient"), str) else None,
            fhir_user=claims.get("fhirUser") if isinstance(claims.get("fhirUser"), str) else None,
            purpose_of_use=tuple(pou) if isinstance(pou, list | tuple) else (),
            registered_scopes=registered_scopes,
            ceiling=None if roles is None else roles.ceiling(role, registered=registered_scopes),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, ready for an OperationOutcome: status 200, 401, 403 or 404."""

    allowed: bool
    status: int
    reason: str
    missing_scope: str | None = None
    search: tuple[SearchConstraint, ...] = ()


@cache
def default_roles() -> RoleTable:
    """The shipped role table, loaded once."""
    return RoleTable.load()


def _allow(reason: str, search: tuple[SearchConstraint, ...] = ()) -> Decision:
    return Decision(allowed=True, status=200, reason=reason, search=search)


def _deny(status: int, reason: str, missing: str | None = None) -> Decision:
    return Decision(allowed=False, status=status, reason=reason, missing_scope=missing)


def decide(
    principal: Principal | None,
    interaction: str,
    resource_type: str,
    resource: Mapping[str, Any] | None = None,
    *,
    roles: RoleTable | None = None,
) -> Decision:
    """Whether `principal` may perform `interaction` on `resource_type` (and `resource`)."""
    letter = letter_for(interaction)
    if principal is None:
        return _deny(401, "a valid bearer access token is required")
    if roles is None and principal.ceiling is not None:
        ceiling = principal.ceiling  # an unknown role got an empty ceiling: denied below
    else:
        table = roles or default_roles()
        if principal.role not in table:
            return _deny(403, "the token's role is not recognized")
        ceiling = table.ceiling(principal.role, registered=principal.registered_scopes)
    if not ceiling.permits(interaction, resource_type, resource):
        return _deny(
            403, f"role {principal.role!r} does not permit {interaction} on {resource_type}"
        )
    scopes = [
        s
        for s in principal.scopes.granting(interaction, resource_type)
        if ceiling.accepts_context(s.context)
    ]
    if not scopes:
        missing = principal.scopes.missing_scope(interaction, resource_type)
        return _deny(403, f"scope {missing} (or broader) is required", missing)
    usable = [s for s in scopes if s.context != "patient" or principal.patient]
    if not usable:
        return _deny(403, "patient-level scopes need a patient in the launch context")
    if resource is None:
        if letter == "s":
            return _allow("allowed", _constraints(usable, principal.patient))
        return _allow("allowed before the resource is known; check again with it")
    if any(_fits(s, resource, principal.patient) for s in usable):
        return _allow("allowed")
    outside = "outside the patient compartment or the scope's query restriction"
    if letter == "r" or letter == "s":
        return _deny(404, f"resource is {outside}; answered as not found")
    return _deny(403, f"resource is {outside}")


def _fits(scope: ResourceScope, resource: Mapping[str, Any], patient: str | None) -> bool:
    if not scope.matches(resource):
        return False
    if scope.context == "patient":
        return patient is not None and in_patient_compartment(resource, patient)
    return True


def _constraints(scopes: list[ResourceScope], patient: str | None) -> tuple[SearchConstraint, ...]:
    out: list[SearchConstraint] = []
    for s in scopes:
        c = SearchConstraint(patient=patient if s.context == "patient" else None, query=s.query)
        if c == SearchConstraint():
            return ()  # one unrestricted scope makes the whole search unrestricted
        if c not in out:
            out.append(c)
    return tuple(out)


def decide_operation(
    principal: Principal | None, operation: str, *, roles: RoleTable | None = None
) -> Decision:
    """Whether `principal` may run a non-FHIR operation (e.g. "reindex", "backup")."""
    if principal is None:
        return _deny(401, "a valid bearer access token is required")
    if roles is None and principal.ceiling is not None:
        ceiling = principal.ceiling
    else:
        ceiling = (roles or default_roles()).ceiling(principal.role)
    if operation not in ceiling.operations:
        return _deny(403, f"role {principal.role!r} does not permit operation {operation!r}")
    return _allow("allowed")


__all__ = ["Decision", "Principal", "decide", "decide_operation", "default_roles"]
