"""Bundles the server answers with: history, and batch/transaction responses."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.api.errors import operation_outcome
from fhir_server.resources.bundles import EntryResult
from fhir_server.resources.meta import from_json_exact, now_instant
from fhir_server.resources.requests import etag
from fhir_server.resources.steps import pause_every
from fhir_server.storage.base import HistoryPage, StoredResource


def status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _request_url(stored: StoredResource) -> tuple[str, str]:
    if stored.method == "POST":
        return "POST", stored.resource_type
    return stored.method, f"{stored.resource_type}/{stored.id}"


def history_bundle(
    page: HistoryPage, *, base_url: str, self_path: str, params: dict[str, str]
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for stored in page.entries:
        method, url = _request_url(stored)
        status = 201 if method == "POST" else (204 if stored.deleted else 200)
        entry: dict[str, Any] = {
            "fullUrl": f"{base_url}/{stored.resource_type}/{stored.id}",
            "request": {"method": method, "url": url},
            "response": {
                "status": status_line(status),
                "etag": etag(stored.version),
                "lastModified": stored.last_updated,
            },
        }
        if not stored.deleted and stored.body is not None:
            entry["resource"] = from_json_exact(stored.body)
        entries.append(entry)
    links = [{"relation": "self", "url": f"{base_url}{self_path}?{urlencode(params)}".rstrip("?")}]
    if page.next_cursor is not None:
        next_params = {**params, "_cursor": page.next_cursor}
        links.append({"relation": "next", "url": f"{base_url}{self_path}?{urlencode(next_params)}"})
    return {
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": now_instant(),
        "link": links,
        "entry": entries,
    }


async def response_bundle(
    kind: str, results: list[EntryResult], *, base_url: str, prefer: str
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for i, result in enumerate(results):
        await pause_every(i)
        response: dict[str, Any] = {"status": status_line(result.status)}
        entry: dict[str, Any] = {"response": response}
        stored = result.outcome.stored if result.outcome else None
        if result.error is not None:
            response["outcome"] = operation_outcome(result.error.issues)
        elif stored is not None:
            response["etag"] = etag(stored.version)
            response["lastModified"] = stored.last_updated
            if not stored.deleted:
                location = f"{stored.resource_type}/{stored.id}/_history/{stored.version}"
                response["location"] = location
                entry["fullUrl"] = f"{base_url}/{stored.resource_type}/{stored.id}"
                if prefer != "minimal" and stored.body is not None:
                    entry["resource"] = orjson.Fragment(stored.body)  # sent as stored
        elif result.resource is not None:
            entry["resource"] = result.resource
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "timestamp": now_instant(), "entry": entries}
