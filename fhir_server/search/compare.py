"""Prefix semantics (eq ne gt lt ge le sa eb ap) as plain column comparisons for both stores.

A condition is ``(negate, [(column, operator, value), ...])``: the conjunction, negated
when ``negate``. Date columns are ``lo``/``hi`` (the indexed value's inclusive range);
number columns are ``v``. Both stores translate these mechanically.
"""

from __future__ import annotations

import time

from fhir_server.search.query import DateValue, NumberValue

Condition = tuple[bool, list[tuple[str, str, float | int]]]
_DAY_MS = 86_400_000


def date_condition(value: DateValue, *, now_ms: int | None = None) -> Condition:
    low, high = value.low, value.high
    prefix = value.prefix
    if prefix in ("eq", "ne"):
        return prefix == "ne", [("lo", ">=", low), ("hi", "<=", high)]
    if prefix == "gt":
        return False, [("hi", ">", high)]
    if prefix == "lt":
        return False, [("lo", "<", low)]
    if prefix == "ge":
        return False, [("hi", ">=", low)]
    if prefix == "le":
        return False, [("lo", "<=", high)]
    if prefix == "sa":
        return False, [("lo", ">", high)]
    if prefix == "eb":
        return False, [("hi", "<", low)]
    if value.margin and now_ms is None:
        margin = value.margin
    else:  # a value built without parse_date: "now" is the compile's
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        margin = max(abs(now - low) // 10, _DAY_MS)
    return False, [("lo", "<=", high + margin), ("hi", ">=", low - margin)]


def number_condition(value: NumberValue) -> Condition:
    prefix = value.prefix
    if prefix in ("eq", "ne"):
        return prefix == "ne", [("v", ">=", value.low), ("v", "<", value.high)]
    if prefix in ("gt", "sa"):
        return False, [("v", ">", value.value)]
    if prefix in ("lt", "eb"):
        return False, [("v", "<", value.value)]
    if prefix == "ge":
        return False, [("v", ">=", value.value)]
    if prefix == "le":
        return False, [("v", "<=", value.value)]
    margin = abs(value.value) * 0.1
    return False, [("v", ">=", value.value - margin), ("v", "<=", value.value + margin)]
