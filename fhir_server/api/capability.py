"""``GET /fhir/metadata``: a CapabilityStatement generated from what is registered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.errors import FHIR_JSON
from fhir_server.api.http import base_url, check_accept
from fhir_server.api.openapi_responses import FHIR_RESPONSES
from fhir_server.resources import exact_json
from fhir_server.resources.meta import READ_ONLY_TYPES, SUPPORTED_TYPES, now_instant
from fhir_server.search.registry import SearchRegistry
from profiles import Validator

router = APIRouter(prefix="/fhir", tags=["FHIR REST"], responses=FHIR_RESPONSES)

_WRITE_INTERACTIONS = ("create", "update", "patch", "delete")
_READ_INTERACTIONS = ("read", "vread", "history-instance", "history-type", "search-type")


def _resource(resource_type: str, registry: SearchRegistry, validator: Validator) -> dict[str, Any]:
    writable = resource_type not in READ_ONLY_TYPES
    codes = (*_READ_INTERACTIONS, *(_WRITE_INTERACTIONS if writable else ()))
    params = [
        {"name": p.code, "definition": p.url, "type": p.type}
        for p in sorted(registry.supported(resource_type).values(), key=lambda p: p.code)
    ]
    entry: dict[str, Any] = {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in codes],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": writable,
        "conditionalCreate": writable,
        "conditionalRead": "not-supported",
        "conditionalUpdate": writable,
        "conditionalDelete": "single" if writable else "not-supported",
        "searchParam": params,
        "operation": [
            {
                "name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            }
        ],
    }
    supported = validator.supported_profiles(resource_type)
    if supported:
        entry["supportedProfile"] = supported
    return entry


def capability_statement(
    *,
    base: str,
    registry: SearchRegistry,
    validator: Validator,
    security: dict[str, Any] | None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": (
            f"Time zone: {timezone} (MEDICORE_TIMEZONE). Dates and times written without a "
            "UTC offset are read in it: search values such as date=2024-01 or "
            "_lastUpdated=2024-01-15T10:00, calendar dates such as birthDate, HL7 v2 times."
        ),
        "resource": [_resource(t, registry, validator) for t in SUPPORTED_TYPES],
        "interaction": [
            {"code": "transaction"},
            {"code": "batch"},
            {"code": "history-system"},
            {"code": "search-system"},
        ],
    }
    if security is not None:
        rest["security"] = security
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_instant(),
        "publisher": "MediCore",
        "kind": "instance",
        "software": {"name": "MediCore FHIR", "version": "0.1.0"},
        "implementation": {"description": "MediCore FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }


# Built once per base URL (the Host a client used), a few kept: the statement changes only
# with a restart, and building it took 0.5 ms of the event loop per request.
_CACHED_BASES = 8


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    check_accept(request)
    base = base_url(request)
    cache: dict[str, bytes] | None = getattr(request.app.state, "capability_cache", None)
    if cache is None:
        cache = {}
        request.app.state.capability_cache = cache
    body = cache.get(base)
    if body is None:
        body = exact_json.dumps(_statement(request, base))
        if len(cache) >= _CACHED_BASES:
            cache.pop(next(iter(cache)))
        cache[base] = body
    return Response(body, media_type=FHIR_JSON)


def _statement(request: Request, base: str) -> dict[str, Any]:
    security = None
    if request.app.state.settings.auth_required:
        from fhir_server.security import security_extension

        security = security_extension(base)
    return capability_statement(
        base=base,
        registry=request.app.state.registry,
        validator=request.app.state.service.validator,
        security=security,
        timezone=request.app.state.settings.timezone,
    )
