"""R4 invariants for our six types, run natively because fhirpathpy costs ~80 µs per expression.

Each invariant keeps its official FHIRPath text; the tests check that the native predicate
and fhirpathpy agree on the official examples and their broken copies wherever fhirpathpy
can evaluate the expression.

Evaluated: dom-2 dom-3 dom-4 dom-5 dom-6 ele-1 ext-1, obs-3 obs-6 obs-7, pat-1, sev-1,
per-1, ref-1, qty-3, rng-2, rat-1, att-1, cpt-2, age-1, cnt-3, dis-1, drt-1, exp-1,
tim-1 tim-2 tim-4..tim-10, txt-2.

Skipped (see SKIPPED): txt-1 (needs the XHTML allow-list of the spec; fhirpathpy has no
htmlChecks), drq-1 drq-2 trd-1..3 (DataRequirement / TriggerDefinition never occur in our
six types except inside extension values).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from profiles.elements import Node
from profiles.issues import Severity

UCUM = "http://unitsofmeasure.org"
Predicate = Callable[[dict[str, Any], Node], bool]

SKIPPED: dict[str, str] = {
    "txt-1": "needs the spec's XHTML allow-list (htmlChecks() is not FHIRPath fhirpathpy runs)",
    "drq-1": "DataRequirement only reachable inside extension values",
    "drq-2": "DataRequirement only reachable inside extension values",
    "trd-1": "TriggerDefinition only reachable inside extension values",
    "trd-2": "TriggerDefinition only reachable inside extension values",
    "trd-3": "TriggerDefinition only reachable inside extension values",
}


@dataclass(frozen=True, slots=True)
class Invariant:
    """One constraint: key, severity, official FHIRPath and its native predicate."""

    key: str
    severity: Severity
    human: str
    expression: str
    check: Predicate
    root_only: bool = False


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _has(d: dict[str, Any], key: str) -> bool:
    v = d.get(key)
    return v is not None and v != [] and v != ""


def _has_choice(d: dict[str, Any], stem: str) -> bool:
    n = len(stem)
    return any(k.startswith(stem) and k[n : n + 1].isupper() for k in d)


# --- date and quantity comparison with FHIRPath's "unknown when precisions differ" rule ---

_DT = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _date_parts(value: str) -> tuple[float, ...] | None:
    m = _DT.match(value)
    if not m:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    if hh is not None and tz is not None:
        iso = f"{year}-{month}-{day}T{hh}:{mm}:{ss or '00'}{tz.replace('Z', '+00:00')}"
        t = datetime.fromisoformat(iso).astimezone(UTC)
        utc = (t.year, t.month, t.day, t.hour, t.minute, t.second + float(frac or 0))
        return tuple(float(p) for p in utc[: 5 if ss is None else 6])
    parts = [float(p) for p in (year, month, day, hh, mm, ss) if p is not None]
    if frac:
        parts[-1] += float(frac)
    return tuple(parts)


def _le_dates(a: str, b: str) -> bool | None:
    pa, pb = _date_parts(a), _date_parts(b)
    if pa is None or pb is None:
        return None
    n = min(len(pa), len(pb))
    if pa[:n] != pb[:n]:
        return pa[:n] < pb[:n]
    return True if len(pa) == len(pb) else None


def _decimal(v: Any) -> Decimal | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return Decimal(str(v))
    except InvalidOperation:
        return None


def per_1(d: dict[str, Any], _: Node) -> bool:
    start, end = d.get("start"), d.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    return _le_dates(start, end) is not False


def rng_2(d: dict[str, Any], _: Node) -> bool:
    low, high = d.get("low"), d.get("high")
    if not isinstance(low, dict) or not isinstance(high, dict):
        return True
    lv, hv = _decimal(low.get("value")), _decimal(high.get("value"))
    if lv is None or hv is None:
        return True
    if (low.get("code"), low.get("unit")) != (high.get("code"), high.get("unit")):
        return True
    return lv <= hv


def ref_1(d: dict[str, Any], node: Node) -> bool:
    ref = d.get("reference")
    if not isinstance(ref, str) or not ref.startswith("#") or ref == "#":
        return True
    ids = {c.get("id") for c in _dicts(node.root.get("contained")) if isinstance(c.get("id"), str)}
    return ref[1:] in ids


def obs_7(d: dict[str, Any], _: Node) -> bool:
    if not _has_choice(d, "value"):
        return True
    own = _dicts(_dict(d.get("code")).get("coding"))
    for comp in _dicts(d.get("component")):
        codings = _dicts(_dict(comp.get("code")).get("coding"))
        if any(c in own for c in codings):
            return False
    return True


def _ucum_quantity(d: dict[str, Any], *, positive: bool = False) -> bool:
    ok = (_has(d, "code") or not _has(d, "value")) and (
        not _has(d, "system") or d.get("system") == UCUM
    )
    if ok and positive and _has(d, "value"):
        v = _decimal(d.get("value"))
        ok = v is None or v > 0
    return ok


def cnt_3(d: dict[str, Any], _: Node) -> bool:
    if not _ucum_quantity(d):
        return False
    if _has(d, "code") and d.get("code") != "1":
        return False
    return not _has(d, "value") or "." not in str(d.get("value"))


def drt_1(d: dict[str, Any], _: Node) -> bool:
    return not _has(d, "code") or (d.get("system") == UCUM and _has(d, "value"))


def _contained_referenced(d: dict[str, Any], _: Node) -> bool:
    contained = _dicts(d.get("contained"))
    if not contained:
        return True
    strings = _string_set(d)
    for c in contained:
        cid = c.get("id")
        if f"#{cid}" not in strings and "#" not in _string_set(c):
            return False
    return True


def _string_set(value: Any) -> set[str]:
    """Every string anywhere inside value."""
    out: set[str] = set()
    stack = [value]
    pop, push, add = stack.pop, stack.extend, out.add
    while stack:
        v = pop()
        if isinstance(v, str):
            add(v)
        elif isinstance(v, dict):
            push(v.values())
        elif isinstance(v, list):
            push(v)
    return out


_TAG = re.compile(r"<[^>]*>")


def txt_2(d: dict[str, Any], _: Node) -> bool:
    div = d.get("div")
    if not isinstance(div, str):
        return True
    return bool(_TAG.sub("", div).strip()) or "<img" in div


def _contained_meta(d: dict[str, Any], keys: tuple[str, ...]) -> bool:
    for c in _dicts(d.get("contained")):
        meta = _dict(c.get("meta"))
        if any(_has(meta, k) for k in keys):
            return False
    return True


def _tim_9(d: dict[str, Any], _: Node) -> bool:
    if not _has(d, "offset"):
        return True
    when = d.get("when")
    if not isinstance(when, list) or not when:
        return False
    return not any(w in ("C", "CM", "CD", "CV") for w in when)


def _non_negative(d: dict[str, Any], key: str) -> bool:
    v = _decimal(d.get(key))
    return v is None or v >= 0


# Invariants that every resource or element inherits: not listed per type in constraints.json.
_COMMON: tuple[tuple[str, str, str, str, Severity, Predicate], ...] = (
    (
        "*resource",
        "dom-2",
        "If the resource is contained in another resource, it SHALL NOT contain nested Resources",
        "contained.contained.empty()",
        "error",
        lambda d, _: all(not _has(c, "contained") for c in _dicts(d.get("contained"))),
    ),
    (
        "*resource",
        "dom-3",
        "If the resource is contained in another resource, it SHALL be "
        "referred to from elsewhere in the resource",
        "contained.where(...)",
        "error",
        _contained_referenced,
    ),
    (
        "*resource",
        "dom-4",
        "If a resource is contained in another resource, it SHALL NOT have "
        "a meta.versionId or a meta.lastUpdated",
        "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
        "error",
        lambda d, _: _contained_meta(d, ("versionId", "lastUpdated")),
    ),
    (
        "*resource",
        "dom-5",
        "If a resource is contained in another resource, it SHALL NOT have a security label",
        "contained.meta.security.empty()",
        "error",
        lambda d, _: _contained_meta(d, ("security",)),
    ),
    (
        "*resource",
        "dom-6",
        "A resource should have narrative for robust management",
        "text.`div`.exists()",
        "warning",
        lambda d, _: isinstance(d.get("text"), dict) and _has(d["text"], "div"),
    ),
    (
        "Extension",
        "ext-1",
        "Must have either extensions or value[x], not both",
        "extension.exists() != value.exists()",
        "error",
        lambda d, _: _has(d, "extension") != _has_choice(d, "value"),
    ),
)

_NATIVE: dict[str, Predicate] = {
    "obs-3": lambda d, _: _has(d, "low") or _has(d, "high") or _has(d, "text"),
    "obs-6": lambda d, _: not _has(d, "dataAbsentReason") or not _has_choice(d, "value"),
    "obs-7": obs_7,
    "pat-1": lambda d, _: any(_has(d, k) for k in ("name", "telecom", "address", "organization")),
    "sev-1": lambda d, _: not _has(d, "name") or not _has(d, "query"),
    "per-1": per_1,
    "ref-1": ref_1,
    "qty-3": lambda d, _: not _has(d, "code") or _has(d, "system"),
    "rng-2": rng_2,
    "rat-1": lambda d, _: (
        (_has(d, "numerator") == _has(d, "denominator"))
        and (_has(d, "numerator") or _has(d, "extension"))
    ),
    "att-1": lambda d, _: not _has(d, "data") or _has(d, "contentType"),
    "cpt-2": lambda d, _: not _has(d, "value") or _has(d, "system"),
    "age-1": lambda d, _: _ucum_quantity(d, positive=True),
    "cnt-3": cnt_3,
    "dis-1": lambda d, _: _ucum_quantity(d),
    "drt-1": drt_1,
    "exp-1": lambda d, _: _has(d, "expression") or _has(d, "reference"),
    "txt-2": txt_2,
    "tim-1": lambda d, _: not _has(d, "duration") or _has(d, "durationUnit"),
    "tim-2": lambda d, _: not _has(d, "period") or _has(d, "periodUnit"),
    "tim-4": lambda d, _: _non_negative(d, "duration"),
    "tim-5": lambda d, _: _non_negative(d, "period"),
    "tim-6": lambda d, _: not _has(d, "periodMax") or _has(d, "period"),
    "tim-7": lambda d, _: not _has(d, "durationMax") or _has(d, "duration"),
    "tim-8": lambda d, _: not _has(d, "countMax") or _has(d, "count"),
    "tim-9": _tim_9,
    "tim-10": lambda d, _: not _has(d, "timeOfDay") or not _has(d, "when"),
}

# The Quantity profiles share Quantity's own invariant besides their own.
_ALSO: dict[str, tuple[str, ...]] = {
    "Age": ("Quantity",),
    "Count": ("Quantity",),
    "Distance": ("Quantity",),
    "Duration": ("Quantity",),
}


class InvariantSet:
    """Invariants indexed by the node type they apply to (a datatype or a backbone path)."""

    def __init__(
        self, constraints: dict[str, list[dict[str, Any]]], resource_types: tuple[str, ...]
    ) -> None:
        by_type: dict[str, list[Invariant]] = {}
        for type_path, items in constraints.items():
            for c in items:
                fn = _NATIVE.get(c["key"])
                if fn is not None:
                    by_type.setdefault(type_path, []).append(
                        Invariant(c["key"], c["severity"], c["human"], c["expression"], fn)
                    )
        for child, parents in _ALSO.items():
            for parent in parents:
                by_type.setdefault(child, []).extend(by_type.get(parent, []))
        for where, key, human, expression, severity, fn in _COMMON:
            targets = resource_types if where == "*resource" else (where,)
            for t in targets:
                by_type.setdefault(t, []).append(
                    Invariant(key, severity, human, expression, fn, root_only=where == "*resource")
                )
        self.by_type = {k: tuple(v) for k, v in by_type.items()}

    def keys(self) -> set[str]:
        return {inv.key for invs in self.by_type.values() for inv in invs}
