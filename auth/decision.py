"""One access decision: token scopes ∩ role ceiling, confined to the patient compartment.

`decide(principal, interaction, type)` says whether the interaction is allowed on the
type at all (401/403 before the store is touched) and, when it is, the constraints every
resource it may touch meets (`Decision.constraints`: OR of constraints, each an AND of a
patient context and token parameters; an empty tuple means unrestricted). The server
compiles those constraints into every query it runs for the caller and evaluates them on
every resource it returns or writes (`fhir_server.resources.access`), so one rule decides
searches, includes, chains, `_has`, conditional criteria, reads by id and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from auth.errors import InvalidScope, InvalidToken
from auth.roles import RoleCeiling, RoleTable
from auth.scopes import ResourceScope, ScopeSet, SearchConstraint


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
    constraints: tuple[SearchConstraint, ...] = ()


@cache
def default_roles() -> RoleTable:
    """The shipped role table, loaded once."""
    return RoleTable.load()


def _allow(reason: str, constraints: tuple[SearchConstraint, ...] = ()) -> Decision:
    return Decision(allowed=True, status=200, reason=reason, constraints=constraints)


def _deny(status: int, reason: str, missing: str | None = None) -> Decision:
    return Decision(allowed=False, status=status, reason=reason, missing_scope=missing)


def decide(
    principal: Principal | None,
    interaction: str,
    resource_type: str,
    *,
    roles: RoleTable | None = None,
) -> Decision:
    """Whether `principal` may perform `interaction` on `resource_type`, and within what."""
    if principal is None:
        return _deny(401, "a valid bearer access token is required")
    if roles is None and principal.ceiling is not None:
        ceiling = principal.ceiling  # an unknown role got an empty ceiling: denied below
    else:
        table = roles or default_roles()
        if principal.role not in table:
            return _deny(403, "the token's role is not recognized")
        ceiling = table.ceiling(principal.role, registered=principal.registered_scopes)
    if not ceiling.permits(interaction, resource_type):
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
    registered = ceiling.registered_queries(interaction, resource_type)
    return _allow("allowed", _constraints(usable, principal.patient, registered))


def _constraints(
    scopes: list[ResourceScope],
    patient: str | None,
    registered: tuple[tuple[tuple[str, str], ...], ...],
) -> tuple[SearchConstraint, ...]:
    """OR of (scope query AND registered query AND patient) over the usable scopes."""
    out: list[SearchConstraint] = []
    for s in scopes:
        for extra in registered or ((),):
            query = tuple(dict.fromkeys((*s.query, *extra)))
            c = SearchConstraint(patient=patient if s.context == "patient" else None, query=query)
            if c == SearchConstraint():
                return ()  # one unrestricted scope makes the whole decision unrestricted
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
