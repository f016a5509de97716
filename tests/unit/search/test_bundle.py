"""Searchset Bundle shaping: links with cursors, modes, total, outcome, _summary/_elements."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_server.api.search_bundle import build_searchset
from fhir_server.search.parse import parse_search
from fhir_server.search.query import Cursor, SearchQuery
from fhir_server.search.registry import SearchRegistry
from fhir_server.search.shaping import shape
from fhir_server.storage.base import SearchResult, StoredResource

BASE = "http://medicore.test/fhir"
OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"versionId": "1"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    "status": "final",
    "code": {"text": "weight"},
    "valueQuantity": {"value": 1},
    "note": [{"text": "a note"}],
}


def _stored(resource: Mapping[str, Any]) -> StoredResource:
    return StoredResource(
        resource_type=str(resource["resourceType"]),
        id=str(resource["id"]),
        version=1,
        last_updated="2026-01-01T00:00:00+00:00",
        deleted=False,
        body=json.dumps(resource).encode(),
    )


def _query(params: list[tuple[str, str]]) -> SearchQuery:
    return parse_search("Observation", params, SearchRegistry.default(), base_url=BASE)


def test_links_modes_total_and_outcome() -> None:
    query = _query([("code", "x"), ("bogus", "1"), ("_count", "1")])
    patient = {"resourceType": "Patient", "id": "p1"}
    next_cursor = Cursor("next", (), 7).encode()
    result = SearchResult(
        matches=[_stored(OBS)], included=[_stored(patient)], total=3, next_cursor=next_cursor
    )
    bundle = build_searchset(result, query, base_url=BASE)
    assert bundle["type"] == "searchset" and bundle["total"] == 3
    modes = [e["search"]["mode"] for e in bundle["entry"]]
    assert modes == ["match", "include", "outcome"]
    assert bundle["entry"][0]["fullUrl"] == f"{BASE}/Observation/o1"
    outcome = bundle["entry"][2]["resource"]
    assert outcome["issue"][0]["expression"] == ["bogus"]
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert set(links) == {"self", "next"}
    parts = urlsplit(links["next"])
    assert parts.path == "/fhir/Observation"
    params = parse_qsl(parts.query)
    assert ("_cursor", next_cursor) in params and ("code", "x") in params
    assert ("bogus", "1") not in params
    # following the link parses back into the same query at the cursor
    again = parse_search("Observation", params, SearchRegistry.default(), base_url=BASE)
    assert again.cursor == Cursor.decode(next_cursor) and again.criteria == query.criteria


def test_summary_count_has_no_entries() -> None:
    query = _query([("_summary", "count")])
    bundle = build_searchset(SearchResult(matches=[], total=12), query, base_url=BASE)
    assert bundle["total"] == 12 and "entry" not in bundle


def test_summary_and_elements_shaping() -> None:
    summary = shape(OBS, summary="true", elements=())
    assert "note" not in summary and "text" not in summary
    assert summary["valueQuantity"] == {"value": 1} and summary["status"] == "final"
    assert {"code": "SUBSETTED"}.items() <= summary["meta"]["tag"][0].items()
    data = shape(OBS, summary="data", elements=())
    assert "text" not in data and "note" in data
    text = shape(OBS, summary="text", elements=())
    assert set(text) == {"resourceType", "id", "meta", "text", "status", "code"}
    elements = shape(OBS, summary=None, elements=("note",))
    assert set(elements) == {"resourceType", "id", "meta", "note", "status", "code"}
    assert shape(OBS, summary=None, elements=()) is OBS


def test_system_search_self_link_keeps_types() -> None:
    query = parse_search(
        None, [("_type", "Patient,Observation")], SearchRegistry.default(), base_url=BASE
    )
    bundle = build_searchset(SearchResult(matches=[]), query, base_url=BASE)
    assert bundle["link"][0]["url"] == f"{BASE}?_type=Patient,Observation"
