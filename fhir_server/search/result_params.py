"""Result controls: _count, _sort, _include/_revinclude, _total, _summary, _elements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fhir_server.digits import non_negative_int
from fhir_server.search.errors import SearchError
from fhir_server.search.query import Include, SortKey

if TYPE_CHECKING:
    from fhir_server.search.query import SearchQuery
    from fhir_server.search.registry import SearchRegistry

_TOTALS = frozenset({"none", "estimate", "accurate"})
_SUMMARIES = frozenset({"true", "false", "text", "data", "count"})
_SORTABLE = frozenset({"string", "token", "date", "number", "quantity", "reference", "uri"})
# Keyset paging compares every earlier sort key per key (quadratic), so keep the list short.
MAX_SORT_KEYS = 8


def parse_control(
    query: SearchQuery,
    control: Sequence[tuple[str, str]],
    registry: SearchRegistry,
    *,
    max_count: int,
    types: Sequence[str],
) -> None:
    """Apply the result-control parameters to ``query`` (in place)."""
    includes: list[Include] = []
    revincludes: list[Include] = []
    for name, value in control:
        base, _, modifier = name.partition(":")
        if base == "_count":
            count = non_negative_int(value, limit=max_count)
            if count is None:
                raise SearchError(name, "_count is a non-negative integer")
            query.count = count
        elif base == "_sort":
            query.sort = tuple(_sort_keys(query, value, registry))
        elif base in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                raise SearchError(name, "unsupported modifier")
            include = _include(name, value, registry, iterate=bool(modifier), types=types)
            (includes if base == "_include" else revincludes).append(include)
        elif base == "_total":
            if value not in _TOTALS:
                raise SearchError(name, "_total is none, estimate or accurate")
            query.total = value
        elif base == "_summary":
            if value not in _SUMMARIES:
                raise SearchError(name, "_summary is true, false, text, data or count")
            query.summary = value
        elif base == "_elements":
            query.elements = tuple(e.strip() for e in value.split(",") if e.strip())
    query.include = tuple(includes)
    query.revinclude = tuple(revincludes)


def _sort_keys(query: SearchQuery, value: str, registry: SearchRegistry) -> list[SortKey]:
    keys: list[SortKey] = []
    items = value.split(",")
    if len(items) > MAX_SORT_KEYS:
        raise SearchError("_sort", f"at most {MAX_SORT_KEYS} sort keys")
    for raw in items:
        item = raw.strip()
        descending = item.startswith("-")
        code = item.lstrip("-")
        if not code:
            raise SearchError("_sort", "empty sort key")
        for resource_type in query.resource_types:
            definition = registry.get(resource_type, code)
            if definition is None or (code != "_id" and definition.type not in _SORTABLE):
                raise SearchError("_sort", "not a sortable parameter")
        keys.append(SortKey(param=code, descending=descending))
    return keys


def _include(
    name: str, value: str, registry: SearchRegistry, *, iterate: bool, types: Sequence[str]
) -> Include:
    if value == "*":
        return Include(source_type="*", param="*", iterate=iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise SearchError(name, "an include is Type:parameter[:targetType]")
    source, param = parts[0], parts[1]
    if source not in types:
        raise SearchError(name, "unsupported resource type")
    reachable: tuple[str, ...] = ()
    if param != "*":
        definition = registry.get(source, param)
        if definition is None or definition.type != "reference":
            raise SearchError(name, "not a reference parameter of that type")
        reachable = definition.targets
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in types:
        raise SearchError(name, "unsupported target resource type")
    return Include(
        source_type=source, param=param, target_type=target, iterate=iterate, reachable=reachable
    )
