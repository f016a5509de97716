"""Query string -> SearchQuery: validation, modifiers, chains, _has and result controls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_server.resources.meta import SUPPORTED_TYPES
from fhir_server.search import parse_values as pv
from fhir_server.search.errors import SearchError
from fhir_server.search.query import (
    CHAIN,
    COMPOSITE,
    DATE,
    HAS,
    ID,
    MISSING,
    NUMBER,
    REFERENCE,
    RESULT_PARAMS,
    STRING,
    TEXT,
    TOKEN,
    URI,
    ChainValue,
    CompositeValue,
    Criterion,
    Cursor,
    HasValue,
    SearchQuery,
    TokenValue,
)
from fhir_server.search.registry import UNSUPPORTED, SearchParamDef, SearchRegistry
from fhir_server.search.result_params import parse_control

# Parameters accepted everywhere and handled outside criteria.
CONTROL = RESULT_PARAMS | {"_type", "_format", "_pretty"}
# Bounds that keep one query's compiled form small on both stores (SQLite caps expression
# depth at 1000 and parser nesting near 10): past them the client gets a 400.
MAX_VALUES = 200  # OR-ed values of one parameter
MAX_CRITERIA = 200  # AND-ed parameters of one search
MAX_DEPTH = 4  # chains and _has nested in one parameter
_MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"", "not", "text", "of-type", "missing"}),
    "string": frozenset({"", "exact", "contains", "missing"}),
    "date": frozenset({"", "missing"}),
    "number": frozenset({"", "missing"}),
    "quantity": frozenset({"", "missing"}),
    "uri": frozenset({"", "below", "above", "missing"}),
    "composite": frozenset({"", "missing"}),
    "reference": frozenset({"", "identifier", "missing"}),
}


class _Unknown(Exception):
    """The parameter is not known for the type (ignored unless strict)."""


def parse_search(
    resource_type: str | None,
    params: Sequence[tuple[str, str]],
    registry: SearchRegistry,
    *,
    base_url: str,
    strict: bool = False,
    max_count: int = 1000,
    default_count: int = 50,
    types: Sequence[str] = SUPPORTED_TYPES,
) -> SearchQuery:
    """Parse ``[(name, value), ...]``; raises SearchError (-> 400) naming the parameter."""
    resource_types = _resource_types(resource_type, params, types)
    query = SearchQuery(resource_types=resource_types, count=default_count)
    criteria: list[Criterion] = []
    kept: list[tuple[str, str]] = []
    control: list[tuple[str, str]] = []
    for name, value in params:
        base_name = name.split(":")[0]
        if base_name in CONTROL:
            if base_name == "_cursor":
                query.cursor = Cursor.decode(value)
            elif base_name not in ("_format", "_pretty"):
                control.append((name, value))
            if base_name not in ("_cursor", "_format", "_pretty"):
                kept.append((name, value))
            continue
        if len(criteria) >= MAX_CRITERIA:
            raise SearchError(name, f"a search takes at most {MAX_CRITERIA} parameters")
        try:
            criteria.append(
                parse_criterion(resource_types, name, value, registry, base_url=base_url)
            )
            kept.append((name, value))
        except _Unknown:
            if strict:
                raise SearchError(name, "unknown or unsupported search parameter") from None
            query.ignored.append(name)
    parse_control(query, control, registry, max_count=max_count, types=types)
    query.criteria = tuple(criteria)
    query.params = tuple(kept)
    return query


def _resource_types(
    resource_type: str | None, params: Sequence[tuple[str, str]], types: Sequence[str]
) -> tuple[str, ...]:
    if resource_type is not None:
        return (resource_type,)
    listed = [t for name, value in params if name == "_type" for t in value.split(",") if t]
    for name in listed:
        if name not in types:
            raise SearchError("_type", "unsupported resource type")
    return tuple(dict.fromkeys(listed)) or tuple(types)


def _definition(
    resource_types: tuple[str, ...], code: str, registry: SearchRegistry
) -> SearchParamDef:
    found = [registry.get(t, code) for t in resource_types]
    if not found or any(d is None for d in found) or code in UNSUPPORTED:
        raise _Unknown(code)
    definition = found[0]
    assert definition is not None
    if code != "_id" and not definition.expression:
        raise _Unknown(code)
    return definition


def parse_criterion(
    resource_types: tuple[str, ...],
    name: str,
    value: str,
    registry: SearchRegistry,
    *,
    base_url: str,
    depth: int = 0,
) -> Criterion:
    """One ``name=value`` pair as a Criterion on ``resource_types``."""
    nested = name.startswith("_has:") or "." in name
    if nested and depth >= MAX_DEPTH:
        raise SearchError(name, f"chains and _has nest at most {MAX_DEPTH} deep")
    if name.startswith("_has:"):
        return _parse_has(resource_types, name, value, registry, base_url=base_url, depth=depth)
    head, dot, chain = name.partition(".")
    code, _, modifier = head.partition(":")
    definition = _definition(resource_types, code, registry)
    if dot:
        return _parse_chain(
            definition, name, modifier, chain, value, registry, base_url=base_url, depth=depth
        )
    if modifier == "missing":
        if value not in ("true", "false"):
            raise SearchError(name, "missing takes true or false")
        return Criterion(param=code, kind=MISSING, values=(value == "true",))
    is_type_modifier = definition.type == "reference" and modifier[:1].isupper()
    if not is_type_modifier and modifier not in _MODIFIERS.get(definition.type, {""}):
        raise SearchError(name, "unsupported modifier")
    if modifier == "of-type" and code != "identifier":
        raise SearchError(name, "of-type applies to identifier only")
    raw = pv.split_escaped(value, ",")
    if any(not part for part in raw):
        raise SearchError(name, "empty value")
    if len(raw) > MAX_VALUES:
        raise SearchError(name, f"a parameter takes at most {MAX_VALUES} values")
    return _typed(definition, name, modifier, raw, is_type_modifier, base_url, registry)


def _typed(
    definition: SearchParamDef,
    name: str,
    modifier: str,
    raw: list[str],
    is_type_modifier: bool,
    base_url: str,
    registry: SearchRegistry,
) -> Criterion:
    code, kind = definition.code, definition.type
    if code == "_id":
        return Criterion(param=code, kind=ID, values=tuple(pv.unescape(v) for v in raw))
    if kind == "token":
        if modifier == "text":
            return Criterion(code, TEXT, tuple(pv.parse_string(name, v, "") for v in raw))
        if modifier == "of-type":
            return Criterion(code + ":of-type", TOKEN, tuple(_of_type(name, v) for v in raw))
        values = tuple(pv.parse_token(name, v) for v in raw)
        return Criterion(code, TOKEN, values, negate=modifier == "not")
    if kind == "string":
        return Criterion(code, STRING, tuple(pv.parse_string(name, v, modifier) for v in raw))
    if kind == "date":
        zone = registry.zone  # values without an offset are the hospital's wall clock
        dates = tuple(pv.parse_date(name, v, zone=zone, clock=registry.clock) for v in raw)
        return Criterion(code, DATE, dates)
    if kind in ("number", "quantity"):
        numbers = [pv.parse_number(name, v, quantity=kind == "quantity") for v in raw]
        canonical = [pv.canonical_number(v) for v in numbers]
        if numbers and all(c is not None for c in canonical):
            return Criterion(code + ":canonical", NUMBER, tuple(canonical))
        return Criterion(code, NUMBER, tuple(numbers))
    if kind == "uri":
        return Criterion(code, URI, tuple(pv.parse_uri(name, v, modifier) for v in raw))
    if kind == "reference":
        if modifier == "identifier":
            return Criterion(
                code + ":identifier", TOKEN, tuple(pv.parse_token(name, v) for v in raw)
            )
        type_mod = modifier if is_type_modifier else None
        refs = [
            r
            for v in raw
            for r in pv.parse_reference(
                name, v, type_modifier=type_mod, targets=definition.targets, base_url=base_url
            )
        ]
        return Criterion(code, REFERENCE, tuple(refs))
    if kind == "composite":
        return Criterion(
            code, COMPOSITE, tuple(_composite(definition, name, v, registry) for v in raw)
        )
    raise _Unknown(code)


def _of_type(name: str, text: str) -> Any:
    parts = pv.split_escaped(text, "|")
    if len(parts) != 3 or not all(parts):
        raise SearchError(name, "of-type is system|code|value")
    system, code, value = (pv.unescape(p) for p in parts)
    return TokenValue(system=system, code=f"{code}|{value}")


def _composite(
    definition: SearchParamDef, name: str, text: str, registry: SearchRegistry
) -> CompositeValue:
    parts = pv.split_escaped(text, "$")
    if len(parts) != 2 or len(definition.components) != 2:
        raise SearchError(name, "a composite value is first$second")
    first_type = registry.component_type(definition.components[0])
    second_type = registry.component_type(definition.components[1])
    if first_type != "token":
        raise _Unknown(definition.code)
    first = pv.parse_token(name, parts[0])
    second: Any
    if second_type == "token":
        second = pv.parse_token(name, parts[1])
    elif second_type in ("quantity", "number"):
        second = pv.parse_number(name, parts[1], quantity=second_type == "quantity")
    elif second_type == "date":
        second = pv.parse_date(name, parts[1], zone=registry.zone, clock=registry.clock)
    elif second_type == "string":
        second = pv.parse_string(name, parts[1], "")
    else:
        raise _Unknown(definition.code)
    return CompositeValue(first=first, second=second, second_kind=second_type)


def _parse_chain(
    definition: SearchParamDef,
    name: str,
    modifier: str,
    chain: str,
    value: str,
    registry: SearchRegistry,
    *,
    base_url: str,
    depth: int,
) -> Criterion:
    if definition.type != "reference":
        raise SearchError(name, "only reference parameters can be chained")
    targets = (modifier,) if modifier else definition.targets
    inner_code = chain.partition(".")[0].partition(":")[0]
    pairs = []
    for target in targets:
        if registry.get(target, inner_code) is None:
            continue
        inner = _inner(name, (target,), chain, value, registry, base_url=base_url, depth=depth)
        pairs.append((target, inner))
    if not pairs:
        raise _Unknown(name)
    return Criterion(definition.code, CHAIN, (ChainValue(targets=tuple(pairs)),))


def _parse_has(
    resource_types: tuple[str, ...],
    name: str,
    value: str,
    registry: SearchRegistry,
    *,
    base_url: str,
    depth: int,
) -> Criterion:
    parts = name.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise SearchError(name, "_has is _has:Type:reference:parameter")
    _, source_type, ref_param, rest = parts
    definition = registry.get(source_type, ref_param)
    if definition is None or definition.type != "reference":
        raise _Unknown(name)
    inner = _inner(name, (source_type,), rest, value, registry, base_url=base_url, depth=depth)
    return Criterion("_has", HAS, (HasValue(source_type, ref_param, inner),))


def _inner(
    name: str,
    resource_types: tuple[str, ...],
    inner_name: str,
    value: str,
    registry: SearchRegistry,
    *,
    base_url: str,
    depth: int,
) -> Criterion:
    """The nested criterion of a chain or _has; a fault names the whole parameter."""
    try:
        return parse_criterion(
            resource_types, inner_name, value, registry, base_url=base_url, depth=depth + 1
        )
    except SearchError as exc:
        raise SearchError(name, exc.message) from exc
