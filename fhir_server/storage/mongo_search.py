"""MongoDB search: the ``idx`` sub-document, its indexes, and running a SearchQuery.

Only plain operations are used, which every MongoDB-compatible server supports
(find with filter/sort/limit/projection, count_documents, create_index).
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.errors import SearchError
from fhir_server.search.extract import IndexEntries
from fhir_server.search.query import MAX_INCLUDED, Cursor, Include, SearchQuery
from fhir_server.storage.base import SearchResult, StoredResource
from fhir_server.storage.mongo_search_filter import (
    SEP,
    criterion_filter,
    field_name,
    query_filter,
    ref_keys,
    token_keys,
)

_PROJECTION = {
    "type": 1,
    "id": 1,
    "version": 1,
    "lastUpdated": 1,
    "body": 1,
    "idx.so": 1,
    "idx.rf": 1,
}


def index_document(entries: IndexEntries) -> dict[str, Any]:
    """The ``idx`` sub-document stored with each current resource."""
    tokens = {k for p, s, c in entries.tokens for k in token_keys(p, s, c)}
    refs = {k for p, t, i in entries.references for k in ref_keys(p, t, i)}
    return {
        "tk": sorted(tokens),
        "tx": sorted({f"{p}{SEP}{t}" for p, t in entries.texts}),
        "st": sorted({f"{p}{SEP}{n}" for p, n, _ in entries.strings}),
        "se": sorted({f"{p}{SEP}{e}" for p, _, e in entries.strings}),
        "dt": [{"p": p, "lo": lo, "hi": hi} for p, lo, hi in entries.dates],
        "nm": [{"p": p, "v": v, "s": s, "c": c} for p, v, s, c in entries.numbers],
        "rf": sorted(refs),
        "rt": sorted({f"{t}{SEP}{i}" for _, t, i in entries.references if t}),
        "ur": sorted({f"{p}{SEP}{u}" for p, u in entries.uris}),
        "cp": [
            {
                "p": p,
                "as": a_s,
                "ac": a_c,
                "bs": b_s,
                "bc": b_c,
                "bn": bn,
                "bl": bl,
                "bh": bh,
                "bstr": bstr,
            }
            for p, a_s, a_c, b_s, b_c, bn, bl, bh, bstr in entries.composites
        ],
        "pr": entries.present,
        "so": {field_name(k): v for k, v in entries.sort.items()},
    }


async def ensure_indexes(db: Any) -> None:
    """Multikey indexes for the ``idx`` fields (each prefixed by type for selectivity)."""
    coll = db["resources"]
    for field in ("tk", "tx", "st", "se", "rf", "rt", "ur", "pr"):
        await coll.create_index([("type", 1), (f"idx.{field}", 1)])
    await coll.create_index([("type", 1), ("idx.dt.p", 1), ("idx.dt.lo", 1)])
    await coll.create_index([("type", 1), ("idx.nm.p", 1), ("idx.nm.v", 1)])
    await coll.create_index([("type", 1), ("idx.cp.p", 1), ("idx.cp.ac", 1)])
    await coll.create_index("idx.rt")


def _stored(doc: dict[str, Any]) -> StoredResource:
    body = doc.get("body")
    return StoredResource(
        resource_type=doc["type"],
        id=doc["id"],
        version=int(doc["version"]),
        last_updated=doc["lastUpdated"],
        deleted=False,
        body=body.encode() if isinstance(body, str) else body,
    )


def _sort_fields(query: SearchQuery) -> list[tuple[str, bool]]:
    fields = [
        ("id" if k.param == "_id" else f"idx.so.{field_name(k.param)}", k.descending)
        for k in query.sort
    ]
    return [*fields, ("_id", False)]


def _value_of(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _compare(field: str, greater: bool, value: Any) -> dict[str, Any] | None:
    if value is None:
        return {field: {"$ne": None}} if greater else None
    clause = {field: {"$gt" if greater else "$lt": value}}
    return clause if greater else {"$or": [clause, {field: None}]}


def _keyset(fields: list[tuple[str, bool]], cursor: Cursor) -> dict[str, Any]:
    values = [*cursor.values, cursor.last]
    if len(values) != len(fields):
        raise SearchError("_cursor", "cursor does not belong to this search")
    ors: list[dict[str, Any]] = []
    for i, (field, descending) in enumerate(fields):
        greater = descending if cursor.direction == "prev" else not descending
        step = _compare(field, greater, values[i])
        if step is None:
            continue
        equal = [{f: values[j]} for j, (f, _) in enumerate(fields[:i])]
        ors.append({"$and": [*equal, step]})
    return {"$or": ors} if ors else {"_id": {"$in": []}}


async def matching(db: Any, query: SearchQuery, *, limit: int) -> list[StoredResource]:
    """Up to ``limit`` current resources matching the criteria (conditional interactions)."""
    filt = await query_filter(db, query.resource_types, query.criteria)
    docs = db["resources"].find(filt, _PROJECTION).sort([("_id", 1)]).limit(limit)
    return [_stored(doc) async for doc in docs]


async def execute(db: Any, query: SearchQuery) -> SearchResult:
    """One page of matches (+ included resources, total and cursors) for ``query``."""
    coll = db["resources"]
    base = await query_filter(db, query.resource_types, query.criteria)
    page_size = query.page_size
    result = SearchResult(matches=[])
    fields = _sort_fields(query)
    docs: list[dict[str, Any]] = []
    if page_size > 0:
        backwards = query.cursor is not None and query.cursor.direction == "prev"
        filt = base if query.cursor is None else {"$and": [base, _keyset(fields, query.cursor)]}
        order = [(f, -1 if desc != backwards else 1) for f, desc in fields]
        docs = [d async for d in coll.find(filt, _PROJECTION).sort(order).limit(page_size + 1)]
        more = len(docs) > page_size
        docs = docs[:page_size]
        if backwards:
            docs.reverse()
        result.matches = [_stored(d) for d in docs]
        if docs:
            has_next = True if backwards else more
            has_prev = more if backwards else query.cursor is not None
            if has_next:
                result.next_cursor = _cursor("next", docs[-1], fields).encode()
            if has_prev:
                result.prev_cursor = _cursor("prev", docs[0], fields).encode()
        result.included = await _included(db, query, docs)
    if query.counts_total:
        result.total = int(await coll.count_documents(base))
    else:
        result.total = query.free_total(len(result.matches))
    return result


def _cursor(direction: str, doc: dict[str, Any], fields: list[tuple[str, bool]]) -> Cursor:
    values = tuple(_value_of(doc, f) for f, _ in fields[:-1])
    return Cursor(direction, values, doc["_id"])


async def _included(
    db: Any, query: SearchQuery, docs: list[dict[str, Any]]
) -> list[StoredResource]:
    if not docs or not (query.include or query.revinclude):
        return []
    seen = {d["_id"] for d in docs}
    frontier = list(docs)
    included: list[StoredResource] = []
    first_round = True
    while frontier and len(included) < MAX_INCLUDED:
        found: list[dict[str, Any]] = []
        for inc in query.include:
            if first_round or inc.iterate:
                found += await _forward(db, inc, frontier)
        for inc in query.revinclude:
            if first_round or inc.iterate:
                found += await _reverse(db, inc, frontier)
        frontier = []
        for doc in found:
            if doc["_id"] not in seen and len(included) < MAX_INCLUDED:
                seen.add(doc["_id"])
                frontier.append(doc)
                included.append(_stored(doc))
        first_round = False
    return included


async def _forward(db: Any, inc: Include, frontier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids: set[str] = set()
    for doc in frontier:
        if inc.source_type not in ("*", doc["type"]):
            continue
        for key in (doc.get("idx") or {}).get("rf", ()):
            param, rtype, rid = key.split(SEP, 2)
            if rtype in ("", "*") or inc.param not in ("*", param):
                continue
            if inc.target_type in (None, rtype):
                ids.add(f"{rtype}/{rid}")
    if not ids:
        return []
    filt: dict[str, Any] = {"_id": {"$in": sorted(ids)}, "deleted": False}
    if inc.access is not None:  # the caller's rule on included rows, in the query
        filt = {"$and": [filt, await criterion_filter(db, inc.access)]}
    cursor = db["resources"].find(filt, _PROJECTION).limit(MAX_INCLUDED)
    return [d async for d in cursor]


async def _reverse(db: Any, inc: Include, frontier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = [d for d in frontier if inc.target_type in (None, d["type"])]
    if not targets:
        return []
    if inc.param == "*":
        clause: dict[str, Any] = {
            "idx.rt": {"$in": [f"{d['type']}{SEP}{d['id']}" for d in targets]}
        }
    else:
        keys = [f"{inc.param}{SEP}{d['type']}{SEP}{d['id']}" for d in targets]
        clause = {"idx.rf": {"$in": keys}}
    filt: dict[str, Any] = {"$and": [clause, {"deleted": False}]}
    if inc.source_type != "*":
        filt["$and"].append({"type": inc.source_type})
    if inc.access is not None:
        filt["$and"].append(await criterion_filter(db, inc.access))
    cursor = db["resources"].find(filt, _PROJECTION).limit(MAX_INCLUDED)
    return [d async for d in cursor]
