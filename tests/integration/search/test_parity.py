"""Parity: every (type, parameter) pair finds a written value and rejects another, on both stores.

Query values are read back from the index entries of the official examples (plus a few
hand-written supplements); what is tested is that parsing, both stores' compilers and
their index layouts agree on every parameter. Extraction itself is checked against
fhirpathpy in tests/unit/search/test_paths.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_server.search.extract import IndexEntries, extract_index
from fhir_server.search.normalize import MAX_MS, MIN_MS
from fhir_server.search.parse import SUPPORTED_TYPES
from fhir_server.search.registry import SearchRegistry
from tests.integration.search.stores import Backend, examples
from tests.integration.search.supplements import SUPPLEMENTS

REGISTRY = SearchRegistry.default()


def _candidates(resource_type: str) -> list[dict[str, Any]]:
    own = [e for e in examples() if e["resourceType"] == resource_type]
    extra = [s for s in SUPPLEMENTS.values() if s["resourceType"] == resource_type]
    return own + extra


def _iso(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _num(value: float) -> str:
    return repr(float(value))


def _second(kind: str, row: tuple[Any, ...]) -> tuple[str, str]:
    _, _, _, b_sys, b_code, b_num, _, b_hi, b_str = row
    if kind == "token":
        return f"{b_sys}|{b_code}", f"{b_sys}|{b_code}-nomatch"
    if kind == "quantity":
        return _num(b_num), _num(b_num + 1000)
    if kind == "date":
        return f"le{_iso(b_hi)}", f"gt{_iso(b_hi)}"
    return b_str[:3], "zzqx"


def _queries(
    code: str, ptype: str, entries: IndexEntries, resource: dict[str, Any]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """(matching params, non-matching params) for one parameter, or None if no value."""
    if code == "_id":
        return [("_id", resource["id"])], [("_id", "nomatch")]
    if ptype == "token":
        rows = [(s, c) for p, s, c in entries.tokens if p == code]
        if rows:
            s, c = rows[0]
            return [(code, f"{s}|{c}")], [(code, f"{s}|{c}-nomatch")]
    if ptype == "string":
        folded = [n for p, n, _ in entries.strings if p == code]
        if folded:
            return [(code, folded[0][:3])], [(code, "zzqx")]
    if ptype == "date":
        dates = [(lo, hi) for p, lo, hi in entries.dates if p == code]
        if dates:
            low, high = min(d[0] for d in dates), max(d[1] for d in dates)
            if high < MAX_MS:
                return [(code, f"le{_iso(high)}")], [(code, f"gt{_iso(high)}")]
            assert low > MIN_MS
            return [(code, f"ge{_iso(low)}")], [(code, f"lt{_iso(low)}")]
    if ptype in ("quantity", "number"):
        numbers = [(v, s, c) for p, v, s, c in entries.numbers if p == code]
        if numbers:
            v, s, c = numbers[0]
            return [(code, f"{_num(v)}|{s}|{c}")], [(code, f"{_num(v + 1000)}|{s}|{c}")]
    if ptype == "reference":
        refs = [(t, i) for p, t, i in entries.references if p == code]
        if refs:
            t, i = refs[0]
            ref = f"{t}/{i}" if t else i
            return [(code, ref)], [(code, f"{ref}-nomatch")]
        idents = [(s, c) for p, s, c in entries.tokens if p == code + ":identifier"]
        if idents:
            s, c = idents[0]
            key = f"{code}:identifier"
            return [(key, f"{s}|{c}")], [(key, f"{s}|{c}-nomatch")]
    if ptype == "uri":
        uris = [u for p, u in entries.uris if p == code]
        if uris:
            return [(code, uris[0])], [(code, uris[0] + "-nomatch")]
    if ptype == "composite":
        composites = [row for row in entries.composites if row[0] == code]
        if composites:
            definition = REGISTRY.params_for(resource["resourceType"])[code]
            kind = REGISTRY.component_type(definition.components[1])
            row = composites[0]
            good, bad = _second(kind, row)
            first = f"{row[1]}|{row[2]}"
            return [(code, f"{first}${good}")], [(code, f"{first}${bad}")]
    return None


PAIRS = [
    (resource_type, code)
    for resource_type in SUPPORTED_TYPES
    for code in sorted(REGISTRY.supported(resource_type))
]


def test_every_supported_pair_is_listed() -> None:
    assert len(PAIRS) > 100
    assert ("Observation", "code-value-quantity") in PAIRS
    assert ("Patient", "_text") not in PAIRS


@pytest.mark.parametrize(("resource_type", "code"), PAIRS)
async def test_parity(backend: Backend, resource_type: str, code: str) -> None:
    definition = REGISTRY.params_for(resource_type)[code]
    for resource in _candidates(resource_type):
        entries = extract_index(resource, REGISTRY)
        queries = _queries(code, definition.type, entries, resource)
        if queries is not None:
            break
    else:
        pytest.fail(f"no example or supplement has a value for {resource_type}.{code}")
    blank = {"resourceType": resource_type, "id": "blank-one"}
    await backend.put(resource)
    await backend.put(blank)
    good, bad = queries
    found = await backend.ids(resource_type, good)
    assert resource["id"] in found, (good, backend.kind)
    assert resource["id"] not in await backend.ids(resource_type, bad), (bad, backend.kind)
    if code == "_id" or code in extract_index(blank, REGISTRY).sort:
        return  # e.g. ``deceased`` is computed (false) even for an empty Patient
    assert "blank-one" not in found
    assert await backend.ids(resource_type, [(f"{code}:missing", "false")]) == {resource["id"]}
    assert await backend.ids(resource_type, [(f"{code}:missing", "true")]) == {"blank-one"}
