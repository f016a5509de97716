"""FHIR operations: ``$validate`` on a type or an instance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fhir_server.api import auditing, reads
from fhir_server.api.access import establish_caller, guard
from fhir_server.api.deps import service
from fhir_server.api.errors import operation_outcome
from fhir_server.api.http import check_accept, json_response, read_json
from fhir_server.api.limits import check_query
from fhir_server.api.openapi_responses import FHIR_RESPONSES
from fhir_server.resources import errors
from fhir_server.resources.amendments import check_change
from fhir_server.resources.meta import from_json
from fhir_server.resources.planning import check_type
from profiles.validator import MODES

router = APIRouter(
    prefix="/fhir",
    tags=["FHIR operations"],
    dependencies=[Depends(establish_caller), Depends(check_query)],
    responses=FHIR_RESPONSES,
)


def _arguments(body: Any, request: Request) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(resource, mode, profile) from a Parameters body, a bare resource, and the query."""
    mode = request.query_params.get("mode")
    profile = request.query_params.get("profile")
    resource: Any = None
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        parameters = body.get("parameter") or []
        if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
            raise errors.bad_request(
                "Parameters.parameter is a list of parameters", "Parameters.parameter"
            )
        for parameter in parameters:
            name = parameter.get("name")
            if name == "resource":
                resource = parameter.get("resource")
            elif name == "mode":
                mode = parameter.get("valueCode") or parameter.get("valueString")
            elif name == "profile":
                profile = parameter.get("valueUri") or parameter.get("valueCanonical")
    elif isinstance(body, dict):
        resource = body
    if mode is not None and mode not in MODES:
        raise errors.bad_request(f"mode must be one of {', '.join(sorted(MODES))}", "mode")
    if profile is not None and not isinstance(profile, str):
        raise errors.bad_request("profile is a canonical URL", "profile")
    if resource is not None and not isinstance(resource, dict):
        raise errors.bad_request("the resource to validate must be a JSON object", "resource")
    return resource, mode, profile


async def _validate(
    request: Request, resource_type: str, resource_id: str | None
) -> dict[str, Any]:
    check_accept(request)
    check_type(resource_type, writable=False)
    guard(request).require("read", resource_type)
    body = await read_json(request, optional=True)
    resource, mode, profile = _arguments(body, request)
    svc = service(request)
    validator = svc.validator
    if mode == "delete":
        if resource_id is None:
            raise errors.bad_request("mode=delete needs an instance", "mode")
        # Read as a read is (access check, compartment, AuditEvent): no peeking at others' ids.
        current = await reads.read(request, resource_type, resource_id)
        try:
            check_change(from_json(current.body or b"{}"), None, amendment=None)
        except errors.FhirError as exc:
            return operation_outcome(exc.issues)
        return validator.to_operation_outcome([])
    if not isinstance(resource, dict):
        raise errors.bad_request("$validate needs a resource to validate", "resource")
    if resource.get("resourceType") != resource_type:
        raise errors.bad_request(
            f"the resource must be a {resource_type}", f"{resource_type}.resourceType"
        )
    if mode == "update" and resource_id is not None and resource.get("id") != resource_id:
        raise errors.bad_request("the resource id differs from the URL", f"{resource_type}.id")
    found = validator.validate(resource, mode=mode, profile=profile)
    return validator.to_operation_outcome(found)


async def _respond(request: Request, resource_type: str, outcome: dict[str, Any]) -> Response:
    auditing.trail(request).add(
        "operation",
        status=200,
        resource_type=resource_type,
        operation="validate",
        query=auditing.raw_query(request),
    )
    await auditing.commit(request)
    return json_response(outcome)


@router.post("/{resource_type}/$validate", summary="Validate a resource (type level)")
async def validate_type(request: Request, resource_type: str) -> Response:
    return await _respond(request, resource_type, await _validate(request, resource_type, None))


@router.post("/{resource_type}/{resource_id}/$validate", summary="Validate against an instance")
async def validate_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    outcome = await _validate(request, resource_type, resource_id)
    return await _respond(request, resource_type, outcome)
