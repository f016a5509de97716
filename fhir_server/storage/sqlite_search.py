"""SQLite search: index tables keyed on ``resource.rid``, writing them, running queries.

Every function is synchronous: the adapter runs them in a thread, on a reader connection
or on the writer connection inside its write transaction. Paging is keyset-based (sort
values + rid), never OFFSET, so deep pages cost what the first one does.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import Any

from fhir_server.search.errors import SearchError
from fhir_server.search.extract import IndexEntries
from fhir_server.search.query import MAX_INCLUDED, TOKEN, Cursor, Include, SearchQuery
from fhir_server.storage.base import SearchResult, StoredResource
from fhir_server.storage.sqlite_search_sql import (
    AUDIT_INDEX_DB,
    criterion_sql,
    db_of,
    json_path,
    token_sql,
    where_sql,
)

_Group = tuple[str, tuple[str, ...]]  # (schema prefix, the query's types it holds)
_DATABASES = ["main.", f"{AUDIT_INDEX_DB}."]
_NULL_SORT = -1e308  # missing sort values sort first ascending (below numbers and text)

SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS idx_token (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " system TEXT NOT NULL, code TEXT NOT NULL, rtype TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_token_q ON idx_token (param, code, system, rid)",
    # Counting one token's matches of one type reads this index alone (no resource rows).
    "CREATE INDEX IF NOT EXISTS idx_token_count ON idx_token (param, rtype, code, system, rid)",
    "CREATE INDEX IF NOT EXISTS idx_token_s ON idx_token (param, system, rid)",
    "CREATE INDEX IF NOT EXISTS idx_token_rid ON idx_token (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_text (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " text TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_text_q ON idx_text (param, text)",
    "CREATE INDEX IF NOT EXISTS idx_text_rid ON idx_text (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_string (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " norm TEXT NOT NULL, exact TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_string_q ON idx_string (param, norm, rid)",
    "CREATE INDEX IF NOT EXISTS idx_string_rid ON idx_string (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_date (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " lo INTEGER NOT NULL, hi INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_date_lo ON idx_date (param, lo, hi)",
    "CREATE INDEX IF NOT EXISTS idx_date_hi ON idx_date (param, hi)",
    "CREATE INDEX IF NOT EXISTS idx_date_rid ON idx_date (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_number (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_number_q ON idx_number (param, value)",
    "CREATE INDEX IF NOT EXISTS idx_number_rid ON idx_number (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_ref (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " rtype TEXT NOT NULL, ref_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_ref_q ON idx_ref (param, ref_id, rtype, rid)",
    "CREATE INDEX IF NOT EXISTS idx_ref_target ON idx_ref (ref_id, rtype, param)",
    "CREATE INDEX IF NOT EXISTS idx_ref_rid ON idx_ref (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_uri (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " uri TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_uri_q ON idx_uri (param, uri)",
    "CREATE INDEX IF NOT EXISTS idx_uri_rid ON idx_uri (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_composite (rid INTEGER NOT NULL, param TEXT NOT NULL,"
    " a_system TEXT NOT NULL, a_code TEXT NOT NULL, b_system TEXT NOT NULL,"
    " b_code TEXT NOT NULL, b_num REAL, b_lo INTEGER, b_hi INTEGER, b_str TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_composite_q ON idx_composite (param, a_code)",
    "CREATE INDEX IF NOT EXISTS idx_composite_rid ON idx_composite (rid, param)",
    "CREATE TABLE IF NOT EXISTS idx_sort (rid INTEGER PRIMARY KEY, doc TEXT NOT NULL)",
)
TABLES = (
    "idx_token",
    "idx_text",
    "idx_string",
    "idx_date",
    "idx_number",
    "idx_ref",
    "idx_uri",
    "idx_composite",
    "idx_sort",
)


def write_indexes(conn: sqlite3.Connection, resources: list[tuple[int, str, IndexEntries]]) -> None:
    """Insert the index rows of several resources, one statement per table for them all
    (call ``delete_index`` first when a resource is rewritten)."""
    tokens: list[tuple[Any, ...]] = []
    texts: list[tuple[Any, ...]] = []
    strings: list[tuple[Any, ...]] = []
    dates: list[tuple[Any, ...]] = []
    numbers: list[tuple[Any, ...]] = []
    references: list[tuple[Any, ...]] = []
    uris: list[tuple[Any, ...]] = []
    composites: list[tuple[Any, ...]] = []
    sorts: list[tuple[int, str]] = []
    for rid, resource_type, entries in resources:
        tokens += [(rid, *t, resource_type) for t in entries.tokens]
        texts += [(rid, *t) for t in entries.texts]
        strings += [(rid, *s) for s in entries.strings]
        dates += [(rid, *d) for d in entries.dates]
        numbers += [(rid, *n) for n in entries.numbers]
        # One row per distinct value: ``Patient/1`` and ``Patient/1/_history/2`` are one.
        references += [(rid, *r) for r in dict.fromkeys(entries.references)]
        uris += [(rid, *u) for u in entries.uris]
        composites += [(rid, *c) for c in entries.composites]
        sorts.append((rid, json.dumps(entries.sort, separators=(",", ":"), ensure_ascii=False)))
    for sql, rows in (
        ("INSERT INTO idx_token VALUES (?,?,?,?,?)", tokens),
        ("INSERT INTO idx_text VALUES (?,?,?)", texts),
        ("INSERT INTO idx_string VALUES (?,?,?,?)", strings),
        ("INSERT INTO idx_date VALUES (?,?,?,?)", dates),
        ("INSERT INTO idx_number VALUES (?,?,?,?,?)", numbers),
        ("INSERT INTO idx_ref VALUES (?,?,?,?)", references),
        ("INSERT INTO idx_uri VALUES (?,?,?)", uris),
        ("INSERT INTO idx_composite VALUES (?,?,?,?,?,?,?,?,?,?)", composites),
        ("INSERT OR REPLACE INTO idx_sort VALUES (?, ?)", sorts),
    ):
        if rows:
            conn.executemany(sql, rows)


def delete_index(conn: sqlite3.Connection, rid: int) -> None:
    """Remove every index row of one resource (before a rewrite, and on delete)."""
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))


def _order_columns(query: SearchQuery) -> list[tuple[str, bool, list[Any]]]:
    """(SQL expression, descending, args) per sort key, then the rid tie-breaker."""
    columns: list[tuple[str, bool, list[Any]]] = []
    for key in query.sort:
        if key.param == "_id":
            columns.append(("r.id", key.descending, []))
        else:
            expr = f"COALESCE(json_extract(s.doc, ?), {_NULL_SORT})"
            columns.append((expr, key.descending, [json_path(key.param)]))
    columns.append(("r.rid", False, []))
    return columns


def _keyset(columns: list[tuple[str, bool, list[Any]]], cursor: Cursor) -> tuple[str, list[Any]]:
    values = [*cursor.values, cursor.last]
    if len(values) != len(columns):
        raise SearchError("_cursor", "cursor does not belong to this search")
    ors: list[str] = []
    args: list[Any] = []
    for i, (expr, descending, expr_args) in enumerate(columns):
        parts: list[str] = []
        for j, (prev_expr, _, prev_args) in enumerate(columns[:i]):
            parts.append(f"{prev_expr} = ?")
            args += [*prev_args, values[j]]
        after = descending if cursor.direction == "prev" else not descending
        parts.append(f"{expr} {'>' if after else '<'} ?")
        args += [*expr_args, values[i]]
        ors.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(ors) + ")", args


def _select(
    conn: sqlite3.Connection, query: SearchQuery, group: _Group, *, limit: int
) -> list[tuple[Any, ...]]:
    db, types = group
    where, args = where_sql(query.criteria, types, db)
    columns = _order_columns(query)
    column_args: list[Any] = [a for _, _, col_args in columns for a in col_args]
    if query.cursor is not None:
        keyset, keyset_args = _keyset(columns, query.cursor)
        where += " AND " + keyset
        args += keyset_args
    reverse = _backwards(query)
    order = ", ".join(f"{expr} {'DESC' if desc != reverse else 'ASC'}" for expr, desc, _ in columns)
    join = f" LEFT JOIN {db}idx_sort s ON s.rid = r.rid" if query.sort else ""
    sort_select = "".join(f", {expr}" for expr, _, _ in columns)
    sql = (
        f"SELECT r.rtype, r.id, r.version, r.last_updated, r.body{sort_select}"
        f" FROM {db}resource r{join} WHERE {where} ORDER BY {order} LIMIT ?"
    )
    rows = conn.execute(sql, [*column_args, *args, *column_args, limit]).fetchall()
    return list(reversed(rows)) if reverse else rows


def _backwards(query: SearchQuery) -> bool:
    return query.cursor is not None and query.cursor.direction == "prev"


def _groups(types: tuple[str, ...]) -> list[_Group]:
    """The query's types by the schema holding them (AuditEvents have their own file)."""
    by_db: dict[str, list[str]] = {}
    for resource_type in types:
        by_db.setdefault(db_of(resource_type), []).append(resource_type)
    return [(db, tuple(members)) for db, members in by_db.items()]


def _page_rows(
    conn: sqlite3.Connection, query: SearchQuery, *, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows of the page in display order, across both schemas.

    Each schema's rows come sorted by SQLite; rows of the two are merged by the same sort
    values and the rid tie-breaker (AuditEvent rids are offset, so rids never collide).
    """
    groups = _groups(query.resource_types)
    if len(groups) == 1:
        return _select(conn, query, groups[0], limit=limit)
    columns = _order_columns(query)
    rows = [row for g in groups for row in _select(conn, query, g, limit=limit)]
    width = len(columns)
    descending = [desc for _, desc, _ in columns]

    def by_sort_values(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        return _compare(a[-width:], b[-width:], descending)

    rows.sort(key=functools.cmp_to_key(by_sort_values))
    return rows[-limit:] if _backwards(query) else rows[:limit]


def _compare(a: tuple[Any, ...], b: tuple[Any, ...], descending: list[bool]) -> int:
    """SQLite's ORDER BY on sort values: numbers before text, per-column direction."""
    for x, y, desc in zip(a, b, descending, strict=True):
        kx, ky = _sqlite_key(x), _sqlite_key(y)
        if kx != ky:
            return (1 if kx > ky else -1) * (-1 if desc else 1)
    return 0


def _sqlite_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


def _stored(row: tuple[Any, ...]) -> StoredResource:
    body = row[4]
    return StoredResource(
        resource_type=row[0],
        id=row[1],
        version=row[2],
        last_updated=row[3],
        deleted=False,
        body=body.encode() if isinstance(body, str) else body,
    )


def matching(conn: sqlite3.Connection, query: SearchQuery, *, limit: int) -> list[StoredResource]:
    """Up to ``limit`` current resources matching the criteria (conditional interactions)."""
    found: list[StoredResource] = []
    for db, types in _groups(query.resource_types):
        where, args = where_sql(query.criteria, types, db)
        rows = conn.execute(
            f"SELECT r.rtype, r.id, r.version, r.last_updated, r.body FROM {db}resource r"
            f" WHERE {where} ORDER BY r.rid LIMIT ?",
            [*args, limit],
        ).fetchall()
        found += [_stored(row) for row in rows]
    return found[:limit]


def count(conn: sqlite3.Connection, query: SearchQuery, *, cap: int | None = None) -> int:
    total = 0
    for db, types in _groups(query.resource_types):
        fast = _token_count(query, db)
        if fast is not None and cap is None:
            total += int(conn.execute(fast[0], fast[1]).fetchone()[0])
            continue
        where, args = where_sql(query.criteria, types, db)
        inner = f"SELECT 1 FROM {db}resource r WHERE {where}" + (" LIMIT ?" if cap else "")
        row = conn.execute(f"SELECT COUNT(*) FROM ({inner})", [*args, *([cap + 1] if cap else [])])
        total += int(row.fetchone()[0])
    return total


def _token_count(query: SearchQuery, db: str) -> tuple[str, list[Any]] | None:
    """An index-only count for the common ``Type?token=...&_summary=count`` shape.

    Index rows of deleted resources are removed on delete, and rows carry the type, so
    counting distinct rids in ``idx_token_count`` is the exact total.
    """
    if len(query.resource_types) != 1 or len(query.criteria) != 1 or db != "main.":
        return None  # (the AuditEvent index file has no idx_token_count)
    criterion = query.criteria[0]
    if criterion.kind != TOKEN or criterion.negate or ":" in criterion.param:
        return None
    ors, args = [], [criterion.param, query.resource_types[0]]
    for value in criterion.values:
        sql, more = token_sql(value)
        ors.append(sql)
        args.extend(more)
    return (
        f"SELECT count(DISTINCT rid) FROM {db}idx_token INDEXED BY idx_token_count"
        f" WHERE param = ? AND rtype = ? AND ({' OR '.join(ors)})",
        args,
    )


def execute(conn: sqlite3.Connection, query: SearchQuery) -> SearchResult:
    """One page of matches (+ included resources, total and cursors) for ``query``."""
    page_size = query.page_size
    result = SearchResult(matches=[])
    if page_size > 0:
        rows = _page_rows(conn, query, limit=page_size + 1)
        backwards = _backwards(query)
        more = len(rows) > page_size
        if more:
            rows = rows[1:] if backwards else rows[:page_size]
        result.matches = [_stored(row) for row in rows]
        if rows:
            first, last = rows[0], rows[-1]
            has_next = more if not backwards else True
            has_prev = more if backwards else query.cursor is not None
            if has_next:
                result.next_cursor = Cursor("next", tuple(last[5:-1]), last[-1]).encode()
            if has_prev:
                result.prev_cursor = Cursor("prev", tuple(first[5:-1]), first[-1]).encode()
        result.included = _included(conn, query, rows)
    if query.counts_total:
        result.total = count(conn, query)
    else:
        result.total = query.free_total(len(result.matches))
    return result


def _included(
    conn: sqlite3.Connection, query: SearchQuery, rows: list[tuple[Any, ...]]
) -> list[StoredResource]:
    if not rows or not (query.include or query.revinclude):
        return []
    seen = {(row[0], row[1]) for row in rows}
    frontier = [(row[0], row[1]) for row in rows]
    included: list[StoredResource] = []
    first_round = True
    while frontier and len(included) < MAX_INCLUDED:
        found: list[tuple[Any, ...]] = []
        for inc in query.include:
            if first_round or inc.iterate:
                found += _forward(conn, inc, frontier)
        for inc in query.revinclude:
            if first_round or inc.iterate:
                found += _reverse(conn, inc, frontier)
        frontier = []
        for row in found:
            key = (row[0], row[1])
            if key not in seen and len(included) < MAX_INCLUDED:
                seen.add(key)
                frontier.append(key)
                included.append(_stored(row))
        first_round = False
    return included


def _forward(
    conn: sqlite3.Connection, inc: Include, frontier: list[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    sources = [p for p in frontier if inc.source_type in ("*", p[0])]
    reach = (inc.target_type,) if inc.target_type else inc.reachable
    # Only the files the parameter can point into (subject never reaches an AuditEvent).
    target_dbs = list(dict.fromkeys(db_of(t) for t in reach)) if reach else _DATABASES
    found: list[tuple[Any, ...]] = []
    for source_db, types in _groups(tuple(dict.fromkeys(t for t, _ in sources))):
        for target_db in target_dbs:
            joins = (
                f" CROSS JOIN {source_db}resource src ON src.rtype = f.rtype AND src.id = f.id"
                f" CROSS JOIN {source_db}idx_ref x INDEXED BY idx_ref_rid ON x.rid = src.rid"
                f" JOIN {target_db}resource t"
                " ON t.rtype = x.rtype AND t.id = x.ref_id AND t.deleted = 0"
            )
            filters = {"x.param": _named(inc.param), "t.rtype": inc.target_type}
            pairs = [p for p in sources if p[0] in types]
            found += _linked(conn, pairs, "t", joins, filters, _access(inc, "t", target_db))
    return found


def _reverse(
    conn: sqlite3.Connection, inc: Include, frontier: list[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    source_type = _named(inc.source_type)
    found: list[tuple[Any, ...]] = []
    for source_db in [db_of(source_type)] if source_type else _DATABASES:
        joins = (
            f" CROSS JOIN {source_db}idx_ref x ON x.rtype = f.rtype AND x.ref_id = f.id"
            f" JOIN {source_db}resource s ON s.rid = x.rid AND s.deleted = 0"
        )
        filters = {"s.rtype": source_type, "x.param": _named(inc.param), "x.rtype": inc.target_type}
        found += _linked(conn, frontier, "s", joins, filters, _access(inc, "s", source_db))
    return found


def _access(inc: Include, alias: str, db: str) -> tuple[str, list[Any]] | None:
    """The caller's rule on included rows, in the query (never a filter on the page)."""
    return None if inc.access is None else criterion_sql(inc.access, alias, db, driver=False)


def _named(value: str) -> str | None:
    return None if value == "*" else value


def _linked(
    conn: sqlite3.Connection,
    frontier: list[tuple[str, str]],
    alias: str,
    joins: str,
    filters: dict[str, str | None],
    access: tuple[str, list[Any]] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows of ``alias`` joined to the frontier ``f(rtype, id)``, given as a VALUES list.

    A VALUES list stays one flat term however long the frontier (an OR per pair hits
    SQLite's expression depth limit near 1000) and drives the joins (CROSS JOIN).
    """
    if not frontier:
        return []
    args: list[Any] = [v for pair in frontier for v in pair]
    wanted = {column: value for column, value in filters.items() if value}
    conditions = [f"{column} = ?" for column in wanted]
    condition_args: list[Any] = list(wanted.values())
    if access is not None:
        conditions.append(access[0])
        condition_args += access[1]
    where = " AND ".join(conditions)
    rows = ",".join("(?,?)" for _ in frontier)
    columns = ", ".join(f"{alias}.{c}" for c in ("rtype", "id", "version", "last_updated", "body"))
    sql = (
        f"WITH f(rtype, id) AS (VALUES {rows}) SELECT DISTINCT {columns} FROM f{joins}"
        + (f" WHERE {where}" if where else "")
        + " LIMIT ?"
    )
    return conn.execute(sql, [*args, *condition_args, MAX_INCLUDED]).fetchall()
