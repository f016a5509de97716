"""Read-side interactions shared by the REST routes and GET entries of Bundles."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fhir_server.api import auditing
from fhir_server.api.access import guard, visible_entries
from fhir_server.api.bundles import history_bundle
from fhir_server.api.deps import search_params, service
from fhir_server.api.http import base_url, prefer_strict
from fhir_server.api.search_bundle import build_searchset
from fhir_server.digits import non_negative_int
from fhir_server.resources import errors
from fhir_server.resources.meta import from_json, normalize_instant
from fhir_server.resources.requests import EntryUrl, parse_criteria
from fhir_server.storage.base import StoredResource

_DEFAULT_PAGE = 50
_ANY_PAGE = 10**9  # a sanity bound only: the service clamps to MEDICORE_MAX_PAGE_SIZE


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    from datetime import datetime

    try:
        return normalize_instant(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError):  # OverflowError: year 9999 at -14:00 and the like
        raise errors.bad_request("_since must be a FHIR instant", "_since") from None


def _count(value: str | None) -> int:
    if value is None:
        return _DEFAULT_PAGE
    count = non_negative_int(value, limit=_ANY_PAGE)
    if count is None:
        raise errors.bad_request("_count must be a non-negative integer", "_count")
    return count


async def history(
    request: Request,
    *,
    resource_type: str | None,
    resource_id: str | None,
    params: list[tuple[str, str]],
) -> dict[str, Any]:
    values = dict(params)
    svc = service(request)
    types = None
    if resource_type and resource_id:
        current = await svc.read_any(resource_type, resource_id)
        if current.body is None and current.version > 1:  # a tombstone: its last content
            current = await svc.vread(resource_type, resource_id, str(current.version - 1))
        guard(request).require(
            "history-instance", resource_type, from_json(current.body or b"{}")
        )
    else:
        types = guard(request).history_types(resource_type)
    page = await svc.history(
        resource_type=resource_type,
        resource_id=resource_id,
        since=_since(values.get("_since")),
        count=_count(values.get("_count")),
        cursor=values.get("_cursor"),
        types=types,
    )
    path = "".join(f"/{p}" for p in (resource_type, resource_id) if p) + "/_history"
    keep = {k: v for k, v in values.items() if k in ("_since", "_count")}
    bundle = history_bundle(page, base_url=base_url(request), self_path=path, params=keep)
    if resource_id:
        # Versions of one readable resource: one once about another patient is left out.
        bundle = visible_entries(request, bundle)
    kind = (
        "history-instance"
        if resource_id
        else ("history-type" if resource_type else "history-system")
    )
    await auditing.record_query(request, kind, bundle, resource_type=resource_type)
    return bundle


async def search(
    request: Request, resource_type: str | None, params: list[tuple[str, str]]
) -> dict[str, Any]:
    svc = service(request)
    base = base_url(request)
    query = svc.parse_query(
        resource_type, search_params(params), base_url=base, strict=prefer_strict(request)
    )
    # Links and the audit show the client's own query; the store runs the confined one.
    result = await svc.search(guard(request).confine(query))
    bundle = build_searchset(result, query, base_url=base)
    await auditing.record_query(request, "search", bundle, resource_type=resource_type)
    return bundle


async def read(request: Request, resource_type: str, resource_id: str) -> StoredResource:
    stored = await service(request).read(resource_type, resource_id)
    resource = from_json(stored.body or b"{}")
    guard(request).require("read", resource_type, resource)
    await auditing.record_read(request, "read", resource, version=stored.version)
    return stored


async def vread(
    request: Request, resource_type: str, resource_id: str, version: str
) -> StoredResource:
    stored = await service(request).vread(resource_type, resource_id, version)
    resource = from_json(stored.body or b"{}")
    guard(request).require("vread", resource_type, resource)
    await auditing.record_read(request, "vread", resource, version=stored.version)
    return stored


async def entry_get(request: Request, url: EntryUrl) -> tuple[int, dict[str, Any] | None]:
    """Answer a GET entry of a batch or transaction."""
    params = parse_criteria(url.query or "")
    if url.history:
        return 200, await history(
            request, resource_type=url.resource_type, resource_id=url.resource_id, params=params
        )
    if url.resource_type and url.resource_id:
        if url.version:
            stored = await vread(request, url.resource_type, url.resource_id, url.version)
        else:
            stored = await read(request, url.resource_type, url.resource_id)
        return 200, from_json(stored.body or b"{}")
    return 200, await search(request, url.resource_type, params)
