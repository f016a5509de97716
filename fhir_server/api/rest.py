"""FHIR REST routes: thin wrappers that parse HTTP, call the service, shape the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fhir_server.api import auditing, reads
from fhir_server.api.access import establish_caller
from fhir_server.api.auditing import trail
from fhir_server.api.bundles import response_bundle
from fhir_server.api.deps import search_params, service
from fhir_server.api.errors import FHIR_JSON
from fhir_server.api.http import (
    base_url,
    check_accept,
    json_response,
    media_type,
    prefer_return,
    read_body,
    read_json,
    version_headers,
    write_response,
)
from fhir_server.api.limits import check_query, check_query_text, limits_of
from fhir_server.api.openapi_responses import FHIR_RESPONSES
from fhir_server.resources import errors
from fhir_server.resources.amendments import parse_x_provenance
from fhir_server.resources.bundles import BundleProcessor
from fhir_server.resources.planning import check_type
from fhir_server.resources.requests import parse_criteria, parse_etag

router = APIRouter(
    prefix="/fhir",
    tags=["FHIR REST"],
    dependencies=[Depends(establish_caller), Depends(check_query)],
    responses=FHIR_RESPONSES,
)


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _criteria(request: Request) -> list[tuple[str, str]]:
    return search_params(_query_pairs(request))


# -- system level ------------------------------------------------------------------------


@router.get("/_history", summary="System history")
async def system_history(request: Request) -> Response:
    check_accept(request)
    bundle = await reads.history(
        request, resource_type=None, resource_id=None, params=_query_pairs(request)
    )
    return json_response(bundle)


@router.get("", summary="System search (_type=...)")
@router.get("/", include_in_schema=False)
async def system_search(request: Request) -> Response:
    check_accept(request)
    return json_response(await reads.search(request, None, _query_pairs(request)))


@router.post("", summary="batch or transaction Bundle")
@router.post("/", include_in_schema=False)
async def batch_or_transaction(request: Request) -> Response:
    check_accept(request)
    bundle = await read_json(request)
    processor = BundleProcessor(
        service(request),
        base_url=base_url(request),
        on_get=lambda url: reads.entry_get(request, url),
        trail=trail(request),
    )
    kind, results = await processor.process(bundle)
    if kind == "batch-response":
        trail(request).add("batch", status=200)
    await auditing.commit(request)
    prefer = prefer_return(request)
    answer = await response_bundle(kind, results, base_url=base_url(request), prefer=prefer)
    return json_response(answer)


# -- type level ----------------------------------------------------------------------------


@router.get("/{resource_type}/_history", summary="Type history")
async def type_history(request: Request, resource_type: str) -> Response:
    check_accept(request)
    bundle = await reads.history(
        request, resource_type=resource_type, resource_id=None, params=_query_pairs(request)
    )
    return json_response(bundle)


@router.post("/{resource_type}/_search", summary="Search (form body)")
async def search_post(request: Request, resource_type: str) -> Response:
    check_accept(request)
    media = media_type(request)
    if media != "application/x-www-form-urlencoded":
        raise errors.FhirError(
            415, "not-supported", "_search takes application/x-www-form-urlencoded"
        )
    body = (await read_body(request)).decode("utf-8", errors="replace")
    check_query_text(body, limits_of(request), status=413)
    params = _query_pairs(request) + parse_criteria(body)
    return json_response(await reads.search(request, resource_type, params))


@router.get("/{resource_type}", summary="Search")
async def search_get(request: Request, resource_type: str) -> Response:
    check_accept(request)
    return json_response(await reads.search(request, resource_type, _query_pairs(request)))


@router.post("/{resource_type}", summary="Create (If-None-Exist for conditional create)")
async def create(request: Request, resource_type: str) -> Response:
    check_accept(request)
    check_type(resource_type, writable=True)  # unknown types fail before the body is read
    resource = await read_json(request)
    header = request.headers.get("if-none-exist")
    criteria = parse_criteria(header.split("?", 1)[-1]) if header else None
    outcome = await service(request).create(
        resource_type, resource, if_none_exist=criteria, trail=trail(request)
    )
    return write_response(request, outcome)


@router.put("/{resource_type}", summary="Conditional update")
async def conditional_update(request: Request, resource_type: str) -> Response:
    check_accept(request)
    check_type(resource_type, writable=True)
    resource = await read_json(request)
    outcome = await service(request).conditional_update(
        resource_type,
        _criteria(request),
        resource,
        if_match=parse_etag(request.headers.get("if-match")),
        trail=trail(request),
    )
    return write_response(request, outcome)


@router.delete("/{resource_type}", summary="Conditional delete")
async def conditional_delete(request: Request, resource_type: str) -> Response:
    check_accept(request)
    outcome = await service(request).conditional_delete(
        resource_type, _criteria(request), trail=trail(request)
    )
    return write_response(request, outcome)


# -- instance level ------------------------------------------------------------------------------


@router.get("/{resource_type}/{resource_id}/_history", summary="Instance history")
async def instance_history(request: Request, resource_type: str, resource_id: str) -> Response:
    check_accept(request)
    bundle = await reads.history(
        request, resource_type=resource_type, resource_id=resource_id, params=_query_pairs(request)
    )
    return json_response(bundle)


@router.get("/{resource_type}/{resource_id}/_history/{version}", summary="vread")
async def vread(request: Request, resource_type: str, resource_id: str, version: str) -> Response:
    check_accept(request)
    shaping = reads.subset(request, resource_type, _query_pairs(request))
    stored = await reads.vread(request, resource_type, resource_id, version)
    body = reads.subsetted_body(stored, shaping)
    return Response(body, media_type=FHIR_JSON, headers=version_headers(stored))


@router.get("/{resource_type}/{resource_id}", summary="read")
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    check_accept(request)
    shaping = reads.subset(request, resource_type, _query_pairs(request))
    stored = await reads.read(request, resource_type, resource_id)
    headers = version_headers(stored)
    if _not_modified(request, version=stored.version, last_updated=stored.last_updated):
        return Response(status_code=304, headers=headers)
    body = reads.subsetted_body(stored, shaping)
    return Response(body, media_type=FHIR_JSON, headers=headers)


@router.put("/{resource_type}/{resource_id}", summary="update (or update-as-create)")
async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    check_accept(request)
    check_type(resource_type, writable=True)
    resource = await read_json(request)
    outcome = await service(request).update(
        resource_type,
        resource_id,
        resource,
        if_match=parse_etag(request.headers.get("if-match")),
        trail=trail(request),
        provenance=_x_provenance(request),
    )
    return write_response(request, outcome)


@router.patch("/{resource_type}/{resource_id}", summary="JSON Patch")
async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    check_accept(request)
    check_type(resource_type, writable=True)
    operations = await read_json(request, patch=True)
    outcome = await service(request).patch(
        resource_type,
        resource_id,
        operations,
        if_match=parse_etag(request.headers.get("if-match")),
        trail=trail(request),
        provenance=_x_provenance(request),
    )
    return write_response(request, outcome)


@router.delete("/{resource_type}/{resource_id}", summary="delete")
async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    check_accept(request)
    outcome = await service(request).delete(
        resource_type,
        resource_id,
        if_match=parse_etag(request.headers.get("if-match")),
        trail=trail(request),
    )
    return write_response(request, outcome)


def _x_provenance(request: Request) -> dict[str, Any] | None:
    header = request.headers.get("x-provenance")
    if header is None:
        return None
    return parse_x_provenance(header, requester=getattr(request.state, "principal", None))


def _not_modified(request: Request, *, version: int, last_updated: str) -> bool:
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        try:
            return parse_etag(none_match, header="If-None-Match") == version
        except errors.FhirError:
            return False
    since = request.headers.get("if-modified-since")
    if since is not None:
        try:
            threshold = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if threshold.tzinfo is None:  # "-0000": RFC 5322's "UTC, origin unknown"
            threshold = threshold.replace(tzinfo=UTC)
        modified = datetime.fromisoformat(last_updated).replace(microsecond=0)
        return modified <= threshold
    return False
