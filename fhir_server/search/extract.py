"""Resource -> normalized index entries (no I/O); one set of entries feeds both stores."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.search.normalize import (
    MAX_MS,
    MIN_MS,
    UCUM,
    date_range,
    exact,
    fold,
    ucum_canonical,
)
from fhir_server.search.paths import Evaluator, compile_expression
from fhir_server.search.registry import SearchParamDef, SearchRegistry, split_union

CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
SKIPPED = frozenset({"_id", "_text", "_content", "_query"})

# (param, a_system, a_code, b_system, b_code, b_num, b_lo, b_hi, b_str)
CompositeRow = tuple[str, str, str, str, str, float | None, int | None, int | None, str]


@dataclass(slots=True)
class IndexEntries:
    """Normalized search values of one resource; plain tuples so it pickles and compares."""

    tokens: list[tuple[str, str, str]] = field(default_factory=list)  # param, system, code
    texts: list[tuple[str, str]] = field(default_factory=list)  # param, folded display text
    strings: list[tuple[str, str, str]] = field(default_factory=list)  # param, folded, exact
    dates: list[tuple[str, int, int]] = field(default_factory=list)  # param, low ms, high ms
    numbers: list[tuple[str, float, str, str]] = field(default_factory=list)  # p, v, sys, code
    references: list[tuple[str, str, str]] = field(default_factory=list)  # p, type, id|url
    uris: list[tuple[str, str]] = field(default_factory=list)
    composites: list[CompositeRow] = field(default_factory=list)
    sort: dict[str, Any] = field(default_factory=dict)  # param -> sort key; keys = present

    @property
    def present(self) -> list[str]:
        """Parameters with at least one value (``:missing=false``)."""
        return sorted(self.sort)


# ---- value conversion by parameter type -------------------------------------------------


def token_values(value: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(system, code) pairs and display texts of a code/Coding/CodeableConcept/Identifier..."""
    if isinstance(value, bool):
        return [("", "true" if value else "false")], []
    if isinstance(value, str | int | float):
        return [("", str(value))], []
    if not isinstance(value, dict):
        return [], []
    if "coding" in value or ("text" in value and "value" not in value and "code" not in value):
        pairs: list[tuple[str, str]] = []
        texts = [value["text"]] if isinstance(value.get("text"), str) else []
        for coding in value.get("coding") or ():
            sub_pairs, sub_texts = token_values(coding)
            pairs += sub_pairs
            texts += sub_texts
        return pairs, texts
    raw_system = value.get("system")
    system: str = raw_system if isinstance(raw_system, str) else ""
    texts = [value["display"]] if isinstance(value.get("display"), str) else []
    if isinstance(value.get("code"), str):
        return [(system, value["code"])], texts
    if isinstance(value.get("value"), str):  # Identifier or ContactPoint
        type_text = (value.get("type") or {}).get("text")
        if isinstance(type_text, str):
            texts.append(type_text)
        if system in CONTACT_SYSTEMS:
            return [(system, value["value"]), ("", value["value"])], texts
        return [(system, value["value"])], texts
    return [], texts


def string_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for key in (
        "text",
        "family",
        "given",
        "prefix",
        "suffix",
        "line",
        "city",
        "district",
        "state",
        "postalCode",
        "country",
    ):
        part = value.get(key)
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, list):
            out.extend(p for p in part if isinstance(p, str))
    return out


def date_values(value: Any) -> list[tuple[int, int]]:
    if isinstance(value, str):
        rng = date_range(value)
        return [rng] if rng else []
    if not isinstance(value, dict):
        return []
    if "start" in value or "end" in value:
        start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
        end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
        return [(start[0] if start else MIN_MS, end[1] if end else MAX_MS)]
    if "event" in value:
        return [r for e in value.get("event") or () for r in date_values(e)]
    return []


def reference_values(value: Any) -> list[tuple[str, str]]:
    """(type, id) for relative references, ("", url) for absolute or canonical ones."""
    ref = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(ref, str) or not ref or ref.startswith("#"):
        return []
    if "://" in ref or ref.startswith("urn:"):
        return [("", ref.split("|")[0])]
    parts = ref.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2 and all(parts):
        return [(parts[0], parts[1])]
    return [("", ref)]


def number_values(value: Any) -> list[tuple[float, str, str]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [(float(value), "", "")]
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        code = value.get("code") or value.get("unit") or ""
        return [(float(value["value"]), str(value.get("system") or ""), str(code))]
    return []


# ---- compiled plan per resource type -----------------------------------------------------


# Top-level elements an expression starts from; None when it cannot be told (always run).
Roots = tuple[str, ...] | None


@dataclass(slots=True)
class _Plan:
    params: list[tuple[SearchParamDef, Evaluator, Roots]]
    composites: list[tuple[SearchParamDef, Evaluator, list[tuple[str, Evaluator]], Roots]]


def expression_roots(expression: str, resource_type: str) -> Roots:
    """The first elements below the resource that ``expression`` reads, e.g.
    ``(Observation.value as Quantity) | Observation.component.code`` -> (value, component).

    A resource that has none of them (as JSON keys, choice suffixes included) yields no
    value, so extraction skips the expression: most parameters of a type concern
    elements a given resource does not carry.
    """
    if "%" in expression:
        return None
    heads: list[str] = []
    for part in split_union(expression):
        match = _HEAD.match(part.lstrip("( "))
        if match is None or match.group(1) not in (resource_type, "Resource", "DomainResource"):
            return None  # not rooted at the resource (or the resource itself): always run
        heads.append(match.group(2))
    return tuple(dict.fromkeys(heads))


_HEAD = re.compile(r"(\w+)\.(\w+)")


def _present(resource: dict[str, Any], roots: Roots) -> bool:
    if roots is None:
        return True
    for root in roots:
        if root in resource:
            return True
        for key in resource:
            if key.startswith(root) and key[len(root) : len(root) + 1].isupper():
                return True  # a choice element: value -> valueQuantity
    return False


def _plan(resource_type: str, registry: SearchRegistry) -> _Plan:
    plan: _Plan | None = registry.plans.get(resource_type)
    if plan is None:
        plan = _Plan([], [])
        for code, definition in registry.params_for(resource_type).items():
            if code in SKIPPED or not definition.expression:
                continue
            root = compile_expression(definition.expression, root_type=resource_type)
            roots = expression_roots(definition.expression, resource_type)
            if definition.type == "composite":
                parts = [
                    (registry.component_type(c), compile_expression(c.expression, root_type=None))
                    for c in definition.components
                ]
                plan.composites.append((definition, root, parts, roots))
            else:
                plan.params.append((definition, root, roots))
        registry.plans[resource_type] = plan
    return plan


def _add(entries: IndexEntries, definition: SearchParamDef, values: list[Any]) -> None:
    code = definition.code
    keys: list[Any] = []
    if definition.type == "token":
        for value in values:
            pairs, texts = token_values(value)
            entries.tokens.extend((code, s, c) for s, c in pairs)
            entries.texts.extend((code, fold(t)) for t in texts)
            keys.extend(c for _, c in pairs)
            if isinstance(value, dict) and isinstance(value.get("value"), str):
                type_pairs, _ = token_values(value.get("type") or {})
                entries.tokens.extend(
                    (code + ":of-type", s, f"{c}|{value['value']}") for s, c in type_pairs
                )
    elif definition.type == "string":
        for value in values:
            for text in string_values(value):
                folded = fold(text)
                entries.strings.append((code, folded, exact(text)))
                keys.append(folded)
    elif definition.type == "date":
        for value in values:
            for low, high in date_values(value):
                entries.dates.append((code, low, high))
                keys.append(low)
    elif definition.type == "reference":
        for value in values:
            for rtype, rid in reference_values(value):
                entries.references.append((code, rtype, rid))
                keys.append(f"{rtype}/{rid}" if rtype else rid)
            ident = value.get("identifier") if isinstance(value, dict) else None
            if isinstance(ident, dict):
                pairs, _ = token_values(ident)
                entries.tokens.extend((code + ":identifier", s, c) for s, c in pairs)
                keys.extend(c for _, c in pairs)
    elif definition.type in ("quantity", "number"):
        for value in values:
            for number, system, unit in number_values(value):
                entries.numbers.append((code, number, system, unit))
                keys.append(number)
                canonical = ucum_canonical(number, unit) if system == UCUM else None
                if canonical is not None:
                    entries.numbers.append((code + ":canonical", canonical[0], UCUM, canonical[1]))
    elif definition.type == "uri":
        for value in values:
            if isinstance(value, str):
                entries.uris.append((code, value))
                keys.append(value)
    if keys:
        entries.sort[code] = min(keys, key=_sort_key)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


_COMPONENT: dict[
    str, Callable[[Any], list[tuple[str, str, float | None, int | None, int | None, str]]]
] = {
    "token": lambda v: [(s, c, None, None, None, "") for s, c in token_values(v)[0]],
    "quantity": lambda v: [(s, c, n, None, None, "") for n, s, c in number_values(v)],
    "number": lambda v: [("", "", n, None, None, "") for n, _, _ in number_values(v)],
    "date": lambda v: [("", "", None, lo, hi, "") for lo, hi in date_values(v)],
    "string": lambda v: [("", "", None, None, None, fold(s)) for s in string_values(v)],
    "uri": lambda v: [("", v, None, None, None, "")] if isinstance(v, str) else [],
    "reference": lambda v: [(t, i, None, None, None, "") for t, i in reference_values(v)],
}


def _add_composite(
    entries: IndexEntries,
    definition: SearchParamDef,
    roots: list[Any],
    parts: list[tuple[str, Evaluator]],
) -> None:
    if len(parts) != 2:
        return
    (a_type, a_eval), (b_type, b_eval) = parts
    for root in roots:
        a_values = [x for v in a_eval(root) for x in _COMPONENT.get(a_type, _none)(v)]
        b_values = [x for v in b_eval(root) for x in _COMPONENT.get(b_type, _none)(v)]
        for a in a_values:
            for b in b_values:
                entries.composites.append((definition.code, a[0], a[1], *b))
    if any(row[0] == definition.code for row in entries.composites):
        entries.sort.setdefault(definition.code, 1)


def _none(_: Any) -> list[Any]:
    return []


def extract_index(resource: dict[str, Any], registry: SearchRegistry) -> IndexEntries:
    """Every search value of ``resource``, normalized for equality/range lookups."""
    plan = _plan(str(resource.get("resourceType")), registry)
    entries = IndexEntries()
    for definition, evaluate, roots in plan.params:
        if not _present(resource, roots):
            continue
        values = evaluate(resource)
        if values:
            _add(entries, definition, values)
    for definition, evaluate, parts, roots in plan.composites:
        if not _present(resource, roots):
            continue
        found = evaluate(resource)
        if found:
            _add_composite(entries, definition, found, parts)
    return entries
