"""Per-request audit: every access under /fhir leaves an AuditEvent, allowed or not; so do
the token service's calls and refusals under /auth."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from auth.compartment import compartment_patients
from fhir_server.observability.labels import interaction as route_interaction
from fhir_server.observability.labels import route_template
from fhir_server.resources import errors
from fhir_server.resources.auditing import AuditTrail, Requestor
from fhir_server.resources.service import ResourceService

# Paths that are public and reveal no patient data: not audited.
_UNAUDITED = re.compile(r"^/fhir/(metadata|\.well-known/.*)$")
# The observability labels name interactions by route template; audit and access
# decisions use the restful-interaction codes, which differ for a few of them.
_AUDIT_NAMES = {
    "search-type": "search",
    "search-system": "search",
    "conditional-update": "update",
    "conditional-delete": "delete",
    "batch-transaction": "transaction",
}
_NOT_FHIR = frozenset({"capabilities", "health", "other", "unmatched"})


def classify(request: Request) -> tuple[str, str | None, str | None]:
    """(interaction, resource type, id) of a FHIR request, from the route it matched."""
    label = route_interaction(request.method, route_template(request.scope))
    name = "operation" if label in _NOT_FHIR else _AUDIT_NAMES.get(label, label)
    params = request.path_params
    return name, params.get("resource_type"), params.get("resource_id")


def _is_token_service(path: str) -> bool:
    return path == "/auth" or path.startswith("/auth/")


def is_audited(path: str) -> bool:
    """FHIR requests, the HL7 routes (their dead letters hold raw messages) and the token
    service's (an unknown /auth route is a probe of the door, audited like a refusal)."""
    if _is_token_service(path):
        return True
    return path.startswith(("/fhir", "/hl7/")) and not _UNAUDITED.match(path)


def trail(request: Request) -> AuditTrail:
    """The request's trail, created on first use."""
    existing: AuditTrail | None = getattr(request.state, "audit_trail", None)
    if existing is not None:
        return existing
    settings = request.app.state.settings
    created = AuditTrail(
        Requestor(
            address=request.client.host if request.client else None,
            # the id the middleware accepted (or made), as in the response and the log
            request_id=getattr(request.state, "request_id", None),
        ),
        server_id=settings.server_id,
        enabled=settings.audit_enabled,
    )
    request.state.audit_trail = created
    return created


def raw_query(request: Request) -> str:
    """The request as BALP wants it in ``entity[query]`` (it is base64-encoded there).

    Under /auth the query string is left out: it may carry a code or a token.
    """
    path = request.url.path
    query = "" if _is_token_service(path) else request.url.query
    return f"{request.method} {path}{'?' + query if query else ''}"


async def commit(request: Request) -> None:
    service: ResourceService = request.app.state.service
    await service.commit_audit(trail(request))


async def record_read(
    request: Request, interaction: str, resource: dict[str, Any], *, version: int | None
) -> None:
    trail(request).add(
        interaction,
        status=200,
        resource_type=resource.get("resourceType"),
        resource_id=resource.get("id"),
        version=version,
        patients=compartment_patients(resource),
    )
    await commit(request)


async def record_query(
    request: Request, interaction: str, bundle: dict[str, Any], *, resource_type: str | None
) -> None:
    patients = list(
        dict.fromkeys(
            pid
            for entry in bundle.get("entry") or []
            for pid in compartment_patients(entry.get("resource") or {})
        )
    )
    trail(request).add(
        interaction,
        status=200,
        resource_type=resource_type,
        patients=patients,
        query=raw_query(request),
    )
    await commit(request)


async def record_failure(request: Request, status: int, *, reason: str) -> None:
    """An AuditEvent for a refused or failed request; a store outage cannot be audited."""
    if not is_audited(request.url.path):
        return
    the_trail = trail(request)
    the_trail.discard()
    interaction, resource_type, resource_id = classify(request)
    the_trail.add(
        interaction,
        status=status,
        resource_type=resource_type,
        resource_id=resource_id,
        query=raw_query(request) if interaction in ("search", "operation") else None,
        description=reason,
        denied=status in (401, 403),
    )
    try:
        await commit(request)
    except errors.FhirError:
        the_trail.discard()  # the store is down: the 503 answer is all that can be done


async def record_authentication(
    request: Request,
    interaction: str,
    *,
    status: int,
    user_id: str | None = None,
    client_id: str | None = None,
    roles: tuple[str, ...] = (),
    description: str = "",
    denied: bool = False,
) -> None:
    """An AuditEvent for a token issued, revoked or introspected (or refused), or a staff
    login (BALP's authentication events); it is durable before the answer leaves."""
    the_trail = trail(request)
    the_trail.identify(user_id=user_id, client_id=client_id, roles=roles)
    the_trail.add(interaction, status=status, description=description, denied=denied)
    await commit(request)
