"""SearchQuery criteria -> SQL predicates over the SQLite search index tables."""

from __future__ import annotations

from typing import Any

from fhir_server.search.compare import Condition, date_condition, number_condition
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
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

Sql = tuple[str, list[Any]]

# AuditEvents and their index live in their own file, attached to reader connections
# under this name (see ``sqlite_audit_index``); every other type is in ``main``.
AUDIT_INDEX_DB = "audit_index"


def db_of(resource_type: str) -> str:
    """The schema prefix of the tables holding ``resource_type``'s rows and index."""
    return f"{AUDIT_INDEX_DB}." if resource_type == "AuditEvent" else "main."


_TABLE = {
    TOKEN: "idx_token",
    TEXT: "idx_text",
    STRING: "idx_string",
    DATE: "idx_date",
    NUMBER: "idx_number",
    REFERENCE: "idx_ref",
    URI: "idx_uri",
    COMPOSITE: "idx_composite",
}


def json_path(param: str) -> str:
    return '$."' + param.replace('"', "") + '"'


def _cond(condition: Condition, columns: dict[str, str]) -> Sql:
    negate, parts = condition
    sql = " AND ".join(f"{columns[col]} {op} ?" for col, op, _ in parts)
    args = [value for _, _, value in parts]
    return (f"NOT ({sql})" if negate else f"({sql})"), args


def token_sql(value: TokenValue, system_col: str = "system", code_col: str = "code") -> Sql:
    parts: list[str] = []
    args: list[Any] = []
    if value.code is not None:
        parts.append(f"{code_col} = ?")
        args.append(value.code)
    if value.system is not None:
        parts.append(f"{system_col} = ?")
        args.append(value.system)
    return "(" + " AND ".join(parts) + ")", args


def string_sql(value: StringValue, norm_col: str = "norm", exact_col: str = "exact") -> Sql:
    if value.mode == "exact":
        return f"({exact_col} = ?)", [value.value]
    if value.mode == "contains":
        return f"(instr({norm_col}, ?) > 0)", [value.value]
    return f"({norm_col} >= ? AND {norm_col} < ?)", [value.value, value.value + MAX_CHAR]


def number_sql(value: NumberValue, v_col: str = "value", prefix: str = "") -> Sql:
    sql, args = _cond(number_condition(value), {"v": v_col})
    if value.system is not None:
        sql += f" AND {prefix}system = ?"
        args.append(value.system)
    if value.code is not None:
        sql += f" AND {prefix}code = ?"
        args.append(value.code)
    return f"({sql})", args


def reference_sql(value: ReferenceValue) -> Sql:
    if value.type is None:
        return "(ref_id = ? AND rtype != '')", [value.id]
    return "(ref_id = ? AND rtype = ?)", [value.id, value.type]


def uri_sql(value: UriValue) -> Sql:
    if value.mode == "below":
        return "(substr(uri, 1, ?) = ?)", [len(value.value), value.value]
    if value.mode == "above":
        return "(substr(?, 1, length(uri)) = uri)", [value.value]
    return "(uri = ?)", [value.value]


def composite_sql(value: CompositeValue) -> Sql:
    first, args = token_sql(value.first, "a_system", "a_code")
    second_value = value.second
    if isinstance(second_value, TokenValue):
        second, more = token_sql(second_value, "b_system", "b_code")
    elif isinstance(second_value, NumberValue):
        second, more = number_sql(second_value, "b_num", prefix="b_")
    elif isinstance(second_value, DateValue):
        second, more = _cond(date_condition(second_value), {"lo": "b_lo", "hi": "b_hi"})
    else:
        second, more = string_sql(second_value, "b_str", "b_str")
    return f"({first} AND {second})", args + more


def _value_sql(kind: str, value: Any) -> Sql:
    if kind == TOKEN:
        return token_sql(value)
    if kind == TEXT:
        return "(instr(text, ?) > 0)", [value.value]
    if kind == STRING:
        return string_sql(value)
    if kind == DATE:
        return _cond(date_condition(value), {"lo": "lo", "hi": "hi"})
    if kind == NUMBER:
        return number_sql(value)
    if kind == REFERENCE:
        return reference_sql(value)
    if kind == URI:
        return uri_sql(value)
    return composite_sql(value)


def criterion_sql(criterion: Criterion, alias: str, db: str, *, driver: bool = True) -> Sql:
    """A predicate on ``alias`` (a ``resource`` row in schema ``db``) for one criterion.

    The ``driver`` criterion becomes ``rid IN (index lookup)`` (SQLite walks it); the
    others become per-row ``EXISTS`` probes, so unselective ranges never get materialized.
    """
    kind = criterion.kind
    if kind == ID:
        marks = ",".join("?" * len(criterion.values))
        return f"{alias}.id IN ({marks})", list(criterion.values)
    if kind == TYPE:
        marks = ",".join("?" * len(criterion.values))
        return f"{alias}.rtype IN ({marks})", list(criterion.values)
    if kind == ALL:
        return _all_sql(criterion.values, alias, db)
    if kind == ANY:
        alternatives = [_all_sql(alternative, alias, db) for alternative in criterion.values]
        if not alternatives:
            return "0", []
        sql = " OR ".join(part for part, _ in alternatives)
        return f"({sql})", [a for _, args in alternatives for a in args]
    if kind == MISSING:
        exists = "json_type(doc, ?) IS NOT NULL"
        sql = f"{alias}.rid IN (SELECT rid FROM {db}idx_sort WHERE {exists})"
        return (f"NOT ({sql})" if criterion.values[0] else sql), [json_path(criterion.param)]
    if kind == CHAIN:
        return _chain_sql(criterion, alias, db)
    if kind == HAS:
        return _has_sql(criterion.values[0], alias)
    ors: list[str] = []
    args: list[Any] = [criterion.param]
    for value in criterion.values:
        sql, more = _value_sql(kind, value)
        ors.append(sql)
        args.extend(more)
    table = _TABLE[kind]
    if driver and not criterion.negate:
        inner = f"SELECT rid FROM {db}{table} WHERE param = ? AND ({' OR '.join(ors)})"
        return f"{alias}.rid IN ({inner})", args
    # INDEXED BY: without statistics SQLite may probe by (param, range) for every row,
    # which is quadratic; the per-row probe must look the row's own entries up.
    probe = (
        f"SELECT 1 FROM {db}{table} INDEXED BY {table}_rid"
        f" WHERE rid = {alias}.rid AND param = ? AND ({' OR '.join(ors)})"
    )
    return f"{'NOT ' if criterion.negate else ''}EXISTS ({probe})", args


def _all_sql(criteria: tuple[Criterion, ...], alias: str, db: str) -> Sql:
    """Every criterion holds (per-row probes: an access rule never drives the query)."""
    parts = [criterion_sql(c, alias, db, driver=False) for c in criteria]
    if not parts:
        return "1", []
    return "(" + " AND ".join(sql for sql, _ in parts) + ")", [a for _, args in parts for a in args]


def _chain_sql(criterion: Criterion, alias: str, db: str) -> Sql:
    chain: ChainValue = criterion.values[0]
    ors: list[str] = []
    args: list[Any] = []
    for target, inner in chain.targets:
        inner_sql, inner_args = criterion_sql(inner, "t", db_of(target))
        # CROSS JOIN fixes the order: find the few targets first, then who points at
        # them (idx_ref_q); the other way round walks every reference of the parameter.
        ors.append(
            f"SELECT x.rid FROM {db_of(target)}resource t CROSS JOIN {db}idx_ref x"
            " ON t.rtype = x.rtype AND t.id = x.ref_id"
            f" WHERE x.param = ? AND x.rtype = ? AND t.deleted = 0 AND {inner_sql}"
        )
        args += [criterion.param, target, *inner_args]
    return f"{alias}.rid IN ({' UNION '.join(ors)})", args


def _has_sql(has: HasValue, alias: str) -> Sql:
    source_db = db_of(has.source_type)
    inner_sql, inner_args = criterion_sql(has.inner, "s", source_db)
    sql = (
        f"EXISTS (SELECT 1 FROM {source_db}idx_ref h JOIN {source_db}resource s"
        " ON s.rid = h.rid"
        f" WHERE h.param = ? AND h.ref_id = {alias}.id AND h.rtype = {alias}.rtype"
        f" AND s.rtype = ? AND s.deleted = 0 AND {inner_sql})"
    )
    return sql, [has.ref_param, has.source_type, *inner_args]


_RANK = {ID: 0, REFERENCE: 1, CHAIN: 2, TOKEN: 3, URI: 3, COMPOSITE: 4, STRING: 5}


def _driver(criteria: tuple[Criterion, ...]) -> int | None:
    """Index of the criterion most likely to be selective (equality lookups), if any."""
    ranked = [
        (_RANK[c.kind], i)
        for i, c in enumerate(criteria)
        if c.kind in _RANK
        and not c.negate
        and not (c.kind == STRING and any(v.mode == "contains" for v in c.values))
    ]
    return min(ranked)[1] if ranked else None


def where_sql(
    criteria: tuple[Criterion, ...], types: tuple[str, ...], db: str, alias: str = "r"
) -> Sql:
    """The full WHERE clause (without keyset) for a query's criteria on ``types``, which
    all live in schema ``db``."""
    marks = ",".join("?" * len(types))
    parts = [f"{alias}.rtype IN ({marks})", f"{alias}.deleted = 0"]
    args: list[Any] = list(types)
    driver = _driver(criteria)
    for index, criterion in enumerate(criteria):
        sql, more = criterion_sql(criterion, alias, db, driver=index == driver)
        parts.append(sql)
        args.extend(more)
    return " AND ".join(parts), args
