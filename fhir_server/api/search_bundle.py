"""SearchResult + SearchQuery -> a searchset Bundle (links with opaque cursors, modes)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.resources.meta import from_json_exact
from fhir_server.search.query import SearchQuery
from fhir_server.search.shaping import shape
from fhir_server.storage.base import SearchResult, StoredResource


def _url(base_url: str, query: SearchQuery, *, cursor: str | None) -> str:
    path = base_url.rstrip("/") + ("/" + query.resource_type if query.resource_type else "")
    params = list(query.params)
    if query.resource_type is None and not any(k == "_type" for k, _ in params):
        params.append(("_type", ",".join(query.resource_types)))
    if cursor:
        params.append(("_cursor", cursor))
    return path + ("?" + urlencode(params, safe=",:|$/") if params else "")


def _entry(
    stored: StoredResource, query: SearchQuery, *, base_url: str, mode: str
) -> dict[str, Any]:
    resource: Any = orjson.Fragment(stored.body) if stored.body else {}  # sent as stored
    if mode == "match" and stored.body and subsets(query):
        resource = shape(
            from_json_exact(stored.body), summary=query.summary, elements=query.elements
        )
    return {
        "fullUrl": f"{base_url.rstrip('/')}/{stored.resource_type}/{stored.id}",
        "resource": resource,
        "search": {"mode": mode},
    }


def subsets(query: SearchQuery) -> bool:
    """Whether ``_summary``/``_elements`` trim the resources (``_summary=false``: no)."""
    return query.summary not in (None, "false") or bool(query.elements)


def _outcome(query: SearchQuery) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": "unknown or unsupported search parameter ignored",
                    "expression": [name],
                }
                for name in query.ignored
            ],
        },
        "search": {"mode": "outcome"},
    }


def build_searchset(result: SearchResult, query: SearchQuery, *, base_url: str) -> dict[str, Any]:
    """The searchset Bundle: matches, then includes, then an outcome for ignored params."""
    links = [{"relation": "self", "url": _url(base_url, query, cursor=_self_cursor(query))}]
    if result.next_cursor:
        links.append({"relation": "next", "url": _url(base_url, query, cursor=result.next_cursor)})
    if result.prev_cursor:
        links.append(
            {"relation": "previous", "url": _url(base_url, query, cursor=result.prev_cursor)}
        )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    entries = [_entry(m, query, base_url=base_url, mode="match") for m in result.matches]
    if query.summary != "count":
        entries += [_entry(i, query, base_url=base_url, mode="include") for i in result.included]
    if query.ignored:
        entries.append(_outcome(query))
    if entries:
        bundle["entry"] = entries
    return bundle


def _self_cursor(query: SearchQuery) -> str | None:
    return query.cursor.encode() if query.cursor is not None else None
