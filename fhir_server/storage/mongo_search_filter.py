"""SearchQuery criteria -> MongoDB filters over the ``idx`` sub-document of each resource.

Values are normalized at write time into flat string keys (one multikey index each) or
small sub-documents matched with ``$elemMatch``; chains and ``_has`` are resolved first
into key lists, so every filter is plain equality/range matching.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.search.compare import Condition, date_condition, number_condition
from fhir_server.search.errors import SearchError
from fhir_server.search.query import (
    ALL,
    ANY,
    CHAIN,
    COMPOSITE,
    DATE,
    HAS,
    ID,
    MAX_CHAR,
    MISSING,
    NUMBER,
    REFERENCE,
    STRING,
    TEXT,
    TOKEN,
    TYPE,
    URI,
    ChainValue,
    CompositeValue,
    Criterion,
    DateValue,
    HasValue,
    NumberValue,
    StringValue,
    TokenValue,
)

SEP = "\x1f"
_OPS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
# Chained / _has targets are resolved into one $in: past this many, the search is refused
# (400) rather than answered from a cut list. SQLite joins instead and has no such bound.
MAX_RESOLVED = 100_000


def token_keys(param: str, system: str, code: str) -> list[str]:
    """The keys a stored token is findable by: system|code, code (any system), system|."""
    return [f"{param}{SEP}{system}{SEP}{code}", f"{param}\x1e{code}", f"{param}\x1d{system}"]


def token_query_key(param: str, value: TokenValue) -> str:
    if value.system is None:
        return f"{param}\x1e{value.code}"
    if value.code is None:
        return f"{param}\x1d{value.system}"
    return f"{param}{SEP}{value.system}{SEP}{value.code}"


def ref_keys(param: str, rtype: str, rid: str) -> list[str]:
    keys = [f"{param}{SEP}{rtype}{SEP}{rid}"]
    if rtype:
        keys.append(f"{param}{SEP}*{SEP}{rid}")
    return keys


def field_name(param: str) -> str:
    return param.replace(".", "_").replace("$", "_")


def _cond(condition: Condition, names: dict[str, str]) -> dict[str, Any]:
    negate, parts = condition
    match: dict[str, Any] = {}
    for column, op, value in parts:
        match.setdefault(names[column], {})[_OPS[op]] = value
    return {"$nor": [match]} if negate else match


def _elem(field: str, param: str, match: dict[str, Any]) -> dict[str, Any]:
    return {field: {"$elemMatch": {"p": param, **match}}}


def _token_elem(value: TokenValue, sys_f: str, code_f: str) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if value.code is not None:
        match[code_f] = value.code
    if value.system is not None:
        match[sys_f] = value.system
    return match


def _number_match(value: NumberValue, v_f: str, sys_f: str, code_f: str) -> dict[str, Any]:
    match = _cond(number_condition(value), {"v": v_f})
    if value.system is not None:
        match[sys_f] = value.system
    if value.code is not None:
        match[code_f] = value.code
    return match


def _contains(field: str, param: str, text: str) -> dict[str, Any]:
    """``param``'s entries containing ``text`` anywhere, line breaks included (as SQLite's
    ``instr``); ``.`` would stop at a newline."""
    return {field: {"$regex": "^" + re.escape(param + SEP) + r"[\s\S]*" + re.escape(text)}}


def _string_clause(field: str, param: str, value: StringValue) -> dict[str, Any]:
    if value.mode == "exact":
        return {"idx.se": f"{param}{SEP}{value.value}"}
    if value.mode == "contains":
        return _contains(field, param, value.value)
    low = f"{param}{SEP}{value.value}"
    return {field: {"$elemMatch": {"$gte": low, "$lt": low + MAX_CHAR}}}


def _composite_clause(param: str, value: CompositeValue) -> dict[str, Any]:
    match = _token_elem(value.first, "as", "ac")
    second = value.second
    if isinstance(second, TokenValue):
        match.update(_token_elem(second, "bs", "bc"))
    elif isinstance(second, NumberValue):
        match.update(_number_match(second, "bn", "bs", "bc"))
    elif isinstance(second, DateValue):
        match.update(_cond(date_condition(second), {"lo": "bl", "hi": "bh"}))
    else:
        assert isinstance(second, StringValue)
        low = second.value
        match["bstr"] = {"$gte": low, "$lt": low + MAX_CHAR}
    return {"idx.cp": {"$elemMatch": {"p": param, **match}}}


def value_clause(kind: str, param: str, value: Any) -> dict[str, Any]:
    """The filter for one value of a plain (non-chain, non-_has) criterion."""
    if kind == TOKEN:
        return {"idx.tk": token_query_key(param, value)}
    if kind == TEXT:
        return _contains("idx.tx", param, value.value)
    if kind == STRING:
        return _string_clause("idx.st", param, value)
    if kind == DATE:
        return _elem("idx.dt", param, _cond(date_condition(value), {"lo": "lo", "hi": "hi"}))
    if kind == NUMBER:
        return {"idx.nm": {"$elemMatch": {"p": param, **_number_match(value, "v", "s", "c")}}}
    if kind == REFERENCE:
        rtype = "*" if value.type is None else value.type
        return {"idx.rf": f"{param}{SEP}{rtype}{SEP}{value.id}"}
    if kind == URI:
        prefix = f"{param}{SEP}"
        if value.mode == "below":
            return {"idx.ur": {"$regex": "^" + re.escape(prefix + value.value)}}
        if value.mode == "above":
            text = value.value
            return {"idx.ur": {"$in": [prefix + text[:i] for i in range(1, len(text) + 1)]}}
        return {"idx.ur": prefix + value.value}
    assert kind == COMPOSITE
    return _composite_clause(param, value)


async def criterion_filter(db: Any, criterion: Criterion) -> dict[str, Any]:
    """A filter on a ``resources`` document for one criterion (chains resolved via ``db``)."""
    kind = criterion.kind
    if kind == ID:
        return {"id": {"$in": list(criterion.values)}}
    if kind == TYPE:
        return {"type": {"$in": list(criterion.values)}}
    if kind == ALL:
        return await _all_filter(db, criterion.values)
    if kind == ANY:
        ors = [await _all_filter(db, alternative) for alternative in criterion.values]
        return {"$or": ors} if ors else {"_id": {"$in": []}}
    if kind == MISSING:
        present = {"idx.pr": criterion.param}
        return {"$nor": [present]} if criterion.values[0] else present
    if kind == CHAIN:
        return await _chain_filter(db, criterion)
    if kind == HAS:
        return await _has_filter(db, criterion.values[0])
    if kind == TOKEN and criterion.negate:
        keys = [token_query_key(criterion.param, v) for v in criterion.values]
        return {"idx.tk": {"$nin": keys}}
    clauses = [value_clause(kind, criterion.param, v) for v in criterion.values]
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


async def _all_filter(db: Any, criteria: tuple[Criterion, ...]) -> dict[str, Any]:
    clauses = [await criterion_filter(db, c) for c in criteria]
    return {"$and": clauses} if clauses else {}


async def query_filter(
    db: Any, types: tuple[str, ...], criteria: tuple[Criterion, ...]
) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = [
        {"type": types[0]} if len(types) == 1 else {"type": {"$in": list(types)}},
        {"deleted": False},
    ]
    for criterion in criteria:
        clauses.append(await criterion_filter(db, criterion))
    return {"$and": clauses}


async def _chain_filter(db: Any, criterion: Criterion) -> dict[str, Any]:
    chain: ChainValue = criterion.values[0]
    keys: list[str] = []
    for target, inner in chain.targets:
        target_filter = await query_filter(db, (target,), (inner,))
        cursor = db["resources"].find(target_filter, {"id": 1})
        for doc in await _bounded(cursor, f"{criterion.param}.{inner.param}"):
            keys.append(f"{criterion.param}{SEP}{target}{SEP}{doc['id']}")
    return {"idx.rf": {"$in": keys}}


async def _has_filter(db: Any, has: HasValue) -> dict[str, Any]:
    source_filter = await query_filter(db, (has.source_type,), (has.inner,))
    prefix = has.ref_param + SEP
    targets: set[str] = set()
    cursor = db["resources"].find(source_filter, {"idx.rf": 1})
    name = f"_has:{has.source_type}:{has.ref_param}:{has.inner.param}"
    for doc in await _bounded(cursor, name):
        for key in doc.get("idx", {}).get("rf", ()):
            if key.startswith(prefix):
                _, rtype, rid = key.split(SEP, 2)
                if rtype and rtype != "*":
                    targets.add(f"{rtype}/{rid}")
    return {"_id": {"$in": sorted(targets)}}


async def _bounded(cursor: Any, param: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = await cursor.limit(MAX_RESOLVED + 1).to_list(None)
    if len(docs) > MAX_RESOLVED:
        raise SearchError(param, f"matches more than {MAX_RESOLVED:,} resources; narrow it down")
    return docs
