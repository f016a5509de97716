"""Authentication at the door of every /fhir route, and filtering of what goes out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from auth.decision import Principal
from fhir_server.api.auditing import classify, trail
from fhir_server.api.docs import BEARER
from fhir_server.api.targets import check_target
from fhir_server.resources import errors
from fhir_server.resources.access import OPEN, Guard, PrincipalGuard
from fhir_server.resources.auditing import AuditTrail

# Interactions that ``auth.decision`` knows per resource type; the others (transaction,
# batch, history-system, operations) are decided entry by entry or resource by resource.
_TYPED = {
    "create",
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "search",
    "history-instance",
    "history-type",
}


async def establish_caller(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],  # OpenAPI only
) -> None:
    """Router dependency: who is calling (401 without a valid token), whether the path
    names a type and operation the server has (404 not-supported), and an early 403 when
    the role or scopes cannot allow this interaction on this type at all."""
    the_guard = await identify_caller(request)
    check_target(request)
    interaction, resource_type, _ = classify(request)
    if resource_type and interaction in _TYPED:
        the_guard.require(interaction, resource_type)


async def identify_caller(request: Request) -> Guard:
    """The request's guard: the authenticated caller's (401 without a valid token), or
    the open one when the server runs without authentication."""
    the_trail = trail(request)
    if not request.app.state.settings.auth_required:
        the_trail.guard = OPEN
        return OPEN
    principal = await authenticated(request)
    _identify(the_trail, principal)
    the_trail.guard = PrincipalGuard(principal, request.app.state.service.registry)
    return the_trail.guard


def _identify(the_trail: AuditTrail, principal: Principal) -> None:
    """Name the caller in the request's AuditEvents: user, client, role, purpose of use."""
    the_trail.identify(
        user_id=principal.subject if principal.role != "system" else None,
        client_id=principal.client_id or None,
        roles=(principal.role,) if principal.role else (),
        purpose_of_use=principal.purpose_of_use,
    )


async def authenticated(request: Request) -> Principal:
    """The verified caller (kept on ``request.state.principal``), or a 401 with a challenge."""
    from fhir_server.security import AuthenticationFailed, authenticate

    try:
        principal = await authenticate(request)
    except AuthenticationFailed as exc:
        raise errors.FhirError(
            401, "login", exc.description, headers={"WWW-Authenticate": exc.www_authenticate}
        ) from None
    request.state.principal = principal
    return principal


def guard(request: Request) -> Guard:
    return trail(request).guard


def visible_entries(request: Request, bundle: dict[str, Any]) -> dict[str, Any]:
    """Drop the versions the caller may not read from one readable resource's history
    (searches never need this: their query is confined in the store)."""
    the_guard = guard(request)
    if the_guard is OPEN or "entry" not in bundle:
        return bundle
    kept = [
        entry
        for entry in bundle["entry"]
        if "resource" not in entry
        or entry["resource"].get("resourceType") == "OperationOutcome"
        or the_guard.may_read(entry["resource"])
    ]
    return {**bundle, "entry": kept}


def require_operation(name: str) -> Any:
    """A route dependency for non-FHIR operations (HL7 intake, dead letters...)."""
    from fastapi import Depends

    async def check(request: Request) -> None:
        if not request.app.state.settings.auth_required:
            return
        from auth.decision import decide_operation

        principal = await authenticated(request)
        _identify(trail(request), principal)
        decision = decide_operation(principal, name)
        if not decision.allowed:
            raise errors.FhirError(decision.status, "forbidden", decision.reason)

    return Depends(check)
