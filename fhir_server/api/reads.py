"""Read-side interactions shared by the REST routes and GET entries of Bundles."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fhir_server.api import auditing
from fhir_server.api.access import guard, visible_entries
from fhir_server.api.bundles import history_bundle
from fhir_server.api.deps import TRANSPORT_PARAMS, search_params, service
from fhir_server.api.http import base_url, prefer_strict
from fhir_server.api.search_bundle import build_searchset, subsets
from fhir_server.digits import non_negative_int
from fhir_server.resources import errors
from fhir_server.resources.meta import from_json, from_json_exact, normalize_instant, to_json
from fhir_server.resources.planning import check_type
from fhir_server.resources.requests import EntryUrl, parse_criteria
from fhir_server.search.query import SearchQuery
from fhir_server.search.shaping import shape
from fhir_server.storage.base import StoredResource

_DEFAULT_PAGE = 50
_ANY_PAGE = 10**9  # a sanity bound only: the service clamps to MEDICORE_MAX_PAGE_SIZE
_SUBSETTING = frozenset({"_summary", "_elements"})
_HISTORY_PARAMS = frozenset({"_since", "_count", "_cursor"})


def subset(
    request: Request,
    resource_type: str | None,
    params: list[tuple[str, str]],
    *,
    accepts: frozenset[str] = frozenset(),
) -> SearchQuery:
    """``_summary``/``_elements`` for an interaction that answers with resources outside a
    searchset (read, vread, history), checked by the search parser as a search's are.
    Other parameters than ``accepts`` are unknown to the interaction: ignored, or under
    ``Prefer: handling=strict`` a 400, as unknown search parameters are."""
    strict = prefer_strict(request)
    subsetting = []
    for name, value in params:
        known = name.partition(":")[0]
        if known in _SUBSETTING:
            subsetting.append((name, value))
        elif strict and known not in accepts and known not in TRANSPORT_PARAMS:
            raise errors.bad_request(f"{name} is not a parameter of this interaction", name)
    query = service(request).parse_query(
        resource_type, subsetting, base_url=base_url(request), strict=True
    )
    if query.summary == "count":
        raise errors.bad_request("_summary=count applies to searches only", "_summary")
    return query


def subsetted(resource: dict[str, Any], query: SearchQuery) -> dict[str, Any]:
    """The resource as ``_summary``/``_elements`` ask (SUBSETTED-tagged when trimmed)."""
    if not subsets(query):
        return resource
    return shape(resource, summary=query.summary, elements=query.elements)


def subsetted_body(stored: StoredResource, query: SearchQuery) -> bytes | None:
    """The stored body as ``_summary``/``_elements`` ask (unparsed when they ask nothing)."""
    if stored.body is None or not subsets(query):
        return stored.body
    return to_json(subsetted(from_json_exact(stored.body), query))


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
    shaping = subset(request, resource_type, params, accepts=_HISTORY_PARAMS)
    values = dict(params)
    svc = service(request)
    types = None
    if resource_type and resource_id:
        current = await svc.read_any(resource_type, resource_id)
        content = await _last_content(request, current)
        _require_visible(
            request, "history-instance", content, unknown=f"{resource_type}/{resource_id}"
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
    keep = {k: v for k, v in values.items() if k in ("_since", "_count", *_SUBSETTING)}
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
    if subsets(shaping):  # after the audit, which names the patients of whole resources
        bundle["entry"] = [
            {**entry, "resource": subsetted(entry["resource"], shaping)}
            if "resource" in entry
            else entry
            for entry in bundle["entry"]
        ]
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
    # The bundle embeds stored bodies as they are; the audit names the patients of the
    # whole resources (subsetting may have left the subject out).
    found = (*result.matches, *result.included)
    audited = {"entry": [{"resource": from_json(s.body)} for s in found if s.body]}
    await auditing.record_query(request, "search", audited, resource_type=resource_type)
    return bundle


async def read(request: Request, resource_type: str, resource_id: str) -> StoredResource:
    svc = service(request)
    stored = await svc.read_any(resource_type, resource_id)
    content = await _last_content(request, stored)
    _require_visible(request, "read", content, unknown=f"{resource_type}/{resource_id}")
    if stored.deleted:  # told only to a caller who could read what was deleted
        raise errors.gone(f"{resource_type}/{resource_id} was deleted")
    await auditing.record_read(request, "read", content, version=stored.version)
    return stored


async def vread(
    request: Request, resource_type: str, resource_id: str, version: str
) -> StoredResource:
    svc = service(request)
    unknown = f"{resource_type}/{resource_id}/_history/{version}"
    try:
        stored = await svc.vread(resource_type, resource_id, version)
    except errors.FhirError as exc:
        if exc.status == 410:  # a deletion: judged on the version it deleted
            before = await svc.vread(resource_type, resource_id, str(int(version) - 1))
            _require_visible(request, "vread", from_json(before.body or b"{}"), unknown=unknown)
        raise
    resource = from_json(stored.body or b"{}")
    _require_visible(request, "vread", resource, unknown=unknown)
    await auditing.record_read(request, "vread", resource, version=stored.version)
    return stored


async def _last_content(request: Request, stored: StoredResource) -> dict[str, Any]:
    """The resource's content, or for a tombstone the version it deleted."""
    if stored.body is None and stored.version > 1:
        before = await service(request).vread(
            stored.resource_type, stored.id, str(stored.version - 1)
        )
        return from_json(before.body or b"{}")
    return from_json(stored.body or b"{}")


def _require_visible(
    request: Request, interaction: str, resource: dict[str, Any], *, unknown: str
) -> None:
    """The access check on a resource read by id: one the caller may not read answers
    exactly as a missing one would (the same 404 and message), so nothing tells them apart."""
    try:
        guard(request).require(interaction, str(resource.get("resourceType", "")), resource)
    except errors.FhirError as exc:
        if exc.status == 404:
            raise errors.not_found(f"{unknown} is not known") from None
        raise


async def entry_get(request: Request, url: EntryUrl) -> tuple[int, dict[str, Any] | None]:
    """Answer a GET entry of a batch or transaction."""
    params = parse_criteria(url.query or "")
    if url.resource_type and url.resource_id:
        # As the REST routes do before any fetch: a type the caller may not read is a 403
        # whatever the id, never a 404 that would tell missing ids from present ones.
        interaction = "history-instance" if url.history else "vread" if url.version else "read"
        check_type(url.resource_type, writable=False)
        guard(request).require(interaction, url.resource_type)
    if url.history:
        return 200, await history(
            request, resource_type=url.resource_type, resource_id=url.resource_id, params=params
        )
    if url.resource_type and url.resource_id:
        shaping = subset(request, url.resource_type, params)
        if url.version:
            stored = await vread(request, url.resource_type, url.resource_id, url.version)
        else:
            stored = await read(request, url.resource_type, url.resource_id)
        return 200, subsetted(from_json_exact(stored.body or b"{}"), shaping)
    return 200, await search(request, url.resource_type, params)
