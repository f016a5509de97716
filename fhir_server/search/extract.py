"""Resource -> normalized index entries (no I/O); one set of entries feeds both stores."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from operator import itemgetter
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
from fhir_server.search.registry import Component, SearchParamDef, SearchRegistry, split_union

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
    pairs: list[tuple[str, str]] = []
    texts: list[str] = []
    _collect_tokens(value, pairs, texts)
    return pairs, texts


def _collect_tokens(value: Any, pairs: list[tuple[str, str]], texts: list[str]) -> None:
    """``token_values`` appending to ``pairs`` and ``texts`` (no lists per Coding)."""
    if not isinstance(value, dict):
        if isinstance(value, bool):
            pairs.append(("", "true" if value else "false"))
        elif isinstance(value, str | int | float):
            pairs.append(("", str(value)))
        return
    if "coding" in value or ("text" in value and "value" not in value and "code" not in value):
        text = value.get("text")
        if isinstance(text, str):
            texts.append(text)
        for coding in value.get("coding") or ():
            _collect_tokens(coding, pairs, texts)
        return
    raw_system = value.get("system")
    system: str = raw_system if isinstance(raw_system, str) else ""
    display = value.get("display")
    if isinstance(display, str):
        texts.append(display)
    code = value.get("code")
    if isinstance(code, str):
        pairs.append((system, code))
        return
    identifier = value.get("value")
    if isinstance(identifier, str):  # Identifier or ContactPoint
        type_text = (value.get("type") or {}).get("text")
        if isinstance(type_text, str):
            texts.append(type_text)
        pairs.append((system, identifier))
        if system in CONTACT_SYSTEMS:
            pairs.append(("", identifier))


_NAME_PARTS = (
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
)


def string_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for key in _NAME_PARTS:
        part = value.get(key)
        if part is None:
            continue
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, list):
            out += [p for p in part if isinstance(p, str)]
    return out


def date_values(value: Any, zone: tzinfo | None = None) -> list[tuple[int, int]]:
    """Ranges of a date/dateTime/instant/Period/Timing; no offset: read in ``zone``."""
    if isinstance(value, str):
        rng = date_range(value, zone)
        return [rng] if rng else []
    if not isinstance(value, dict):
        return []
    if "start" in value or "end" in value:
        start = date_range(value["start"], zone) if isinstance(value.get("start"), str) else None
        end = date_range(value["end"], zone) if isinstance(value.get("end"), str) else None
        return [(start[0] if start else MIN_MS, end[1] if end else MAX_MS)]
    if "event" in value:
        return [r for e in value.get("event") or () for r in date_values(e, zone)]
    return []


def reference_values(value: Any) -> list[tuple[str, str]]:
    """(type, id) for relative references, ("", url) for absolute or canonical ones."""
    pair = _reference(value.get("reference") if isinstance(value, dict) else value)
    return [pair] if pair else []


def _reference(ref: Any) -> tuple[str, str] | None:
    if not isinstance(ref, str) or not ref or ref[0] == "#":
        return None
    if "://" in ref or ref.startswith("urn:"):
        return ("", ref.split("|")[0])
    parts = ref.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2 and parts[0] and parts[1]:
        return (parts[0], parts[1])
    return ("", ref)


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

# Turns what an evaluator found into entries; specialized per parameter at plan time.
Adder = Callable[[IndexEntries, list[Any]], None]
Extractor = tuple[Evaluator, Adder]

# Resource shapes (key tuples) remembered per plan before the memo starts over.
_MAX_SHAPES = 256


@dataclass(slots=True)
class _Plan:
    """Evaluator and adder per parameter (in registry order, composites last)."""

    params: list[tuple[Evaluator, Adder, Roots]]
    # What a resource with these top-level keys needs: _present depends on the keys only.
    by_shape: dict[tuple[str, ...], list[Extractor]] = field(default_factory=dict)

    def for_resource(self, resource: dict[str, Any]) -> list[Extractor]:
        shape = tuple(resource)
        found = self.by_shape.get(shape)
        if found is None:
            found = [(ev, add) for ev, add, roots in self.params if _present(resource, roots)]
            if len(self.by_shape) >= _MAX_SHAPES:
                self.by_shape.clear()
            self.by_shape[shape] = found
        return found


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
        params: list[tuple[Evaluator, Adder, Roots]] = []
        composites: list[tuple[Evaluator, Adder, Roots]] = []
        for code, definition in registry.params_for(resource_type).items():
            if code in SKIPPED or not definition.expression:
                continue
            if definition.type == "composite":
                add = _composite_adder(definition, registry)
                target = composites
            elif definition.type == "date":
                add = _date_adder(code, registry.zone)
                target = params
            else:
                add = _ADDERS[definition.type](code) if definition.type in _ADDERS else None
                target = params
            if add is None:
                continue  # a type that yields no entries (special, malformed composite)
            root = compile_expression(definition.expression, root_type=resource_type)
            target.append((root, add, expression_roots(definition.expression, resource_type)))
        plan = _Plan(params + composites)
        registry.plans[resource_type] = plan
    return plan


# ---- adders per parameter type -------------------------------------------------------------
# A parameter's sort key is its smallest value. All values of one parameter type have one
# Python type (str codes/texts/references, int dates, float numbers), so plain min() suffices.


def _token_adder(code: str) -> Adder:
    of_type = code + ":of-type"

    def add(entries: IndexEntries, values: list[Any]) -> None:
        tokens = entries.tokens
        pairs: list[tuple[str, str]] = []
        texts: list[str] = []
        done = 0  # pairs[:done] are in tokens already
        for value in values:
            if type(value) is str:  # a code: the commonest value
                pairs.append(("", value))
                continue
            _collect_tokens(value, pairs, texts)
            kind = value.get("type") if isinstance(value, dict) else None
            if kind and isinstance(value.get("value"), str):  # Identifier type: after its pairs
                tokens += [(code, s, c) for s, c in pairs[done:]]
                done = len(pairs)
                tokens += [(of_type, s, f"{c}|{value['value']}") for s, c in token_values(kind)[0]]
        if pairs:
            tokens += [(code, s, c) for s, c in (pairs[done:] if done else pairs)]
            entries.sort[code] = min(map(itemgetter(1), pairs))
        if texts:
            entries.texts += [(code, fold(text)) for text in texts]

    return add


def _string_adder(code: str) -> Adder:
    def add(entries: IndexEntries, values: list[Any]) -> None:
        strings = entries.strings
        keys: list[str] = []
        for value in values:
            for text in [value] if isinstance(value, str) else string_values(value):
                folded = fold(text)
                strings.append((code, folded, exact(text)))
                keys.append(folded)
        if keys:
            entries.sort[code] = min(keys)

    return add


def _date_adder(code: str, zone: tzinfo | None = None) -> Adder:
    def add(entries: IndexEntries, values: list[Any]) -> None:
        dates = entries.dates
        keys: list[int] = []
        for value in values:
            for low, high in date_values(value, zone):
                dates.append((code, low, high))
                keys.append(low)
        if keys:
            entries.sort[code] = min(keys)

    return add


def _reference_adder(code: str) -> Adder:
    by_identifier = code + ":identifier"

    def add(entries: IndexEntries, values: list[Any]) -> None:
        references, tokens = entries.references, entries.tokens
        keys: list[str] = []
        for value in values:
            ident = None
            if isinstance(value, dict):
                pair = _reference(value.get("reference"))
                ident = value.get("identifier")
            else:
                pair = _reference(value)
            if pair is not None:
                references.append((code, *pair))
                keys.append(f"{pair[0]}/{pair[1]}" if pair[0] else pair[1])
            if isinstance(ident, dict):
                pairs: list[tuple[str, str]] = []
                _collect_tokens(ident, pairs, [])
                for system, token in pairs:
                    tokens.append((by_identifier, system, token))
                    keys.append(token)
        if keys:
            entries.sort[code] = min(keys)

    return add


def _number_adder(code: str) -> Adder:
    canonical_code = code + ":canonical"

    def add(entries: IndexEntries, values: list[Any]) -> None:
        numbers = entries.numbers
        keys: list[float] = []
        for value in values:
            for number, system, unit in number_values(value):
                numbers.append((code, number, system, unit))
                keys.append(number)
                canonical = ucum_canonical(number, unit) if system == UCUM else None
                if canonical is not None:
                    numbers.append((canonical_code, canonical[0], UCUM, canonical[1]))
        if keys:
            entries.sort[code] = min(keys)

    return add


def _uri_adder(code: str) -> Adder:
    def add(entries: IndexEntries, values: list[Any]) -> None:
        keys = [value for value in values if isinstance(value, str)]
        if keys:
            entries.uris += [(code, value) for value in keys]
            entries.sort[code] = min(keys)

    return add


_ADDERS: dict[str, Callable[[str], Adder]] = {
    "token": _token_adder,
    "string": _string_adder,
    "date": _date_adder,
    "reference": _reference_adder,
    "quantity": _number_adder,
    "number": _number_adder,
    "uri": _uri_adder,
}


# ---- composites ---------------------------------------------------------------------------

# One composite component value: (system, code, number, low, high, folded string).
_Part = tuple[str, str, float | None, int | None, int | None, str]

_COMPONENT: dict[str, Callable[[Any], list[_Part]]] = {
    "token": lambda v: [(s, c, None, None, None, "") for s, c in token_values(v)[0]],
    "quantity": lambda v: [(s, c, n, None, None, "") for n, s, c in number_values(v)],
    "number": lambda v: [("", "", n, None, None, "") for n, _, _ in number_values(v)],
    "date": lambda v: [("", "", None, lo, hi, "") for lo, hi in date_values(v)],
    "string": lambda v: [("", "", None, None, None, fold(s)) for s in string_values(v)],
    "uri": lambda v: [("", v, None, None, None, "")] if isinstance(v, str) else [],
    "reference": lambda v: [(t, i, None, None, None, "") for t, i in reference_values(v)],
}


def _component(
    registry: SearchRegistry, component: Component
) -> tuple[Evaluator, Callable[[Any], list[_Part]]]:
    kind = registry.component_type(component)
    zone = registry.zone
    convert: Callable[[Any], list[_Part]]
    if kind == "date" and zone is not None:
        convert = lambda v: [("", "", None, lo, hi, "") for lo, hi in date_values(v, zone)]  # noqa: E731
    else:
        convert = _COMPONENT.get(kind, _none)
    return compile_expression(component.expression, root_type=None), convert


def _composite_adder(definition: SearchParamDef, registry: SearchRegistry) -> Adder | None:
    if len(definition.components) != 2:
        return None
    code = definition.code
    a_eval, a_convert = _component(registry, definition.components[0])
    b_eval, b_convert = _component(registry, definition.components[1])

    def add(entries: IndexEntries, roots: list[Any]) -> None:
        rows = entries.composites
        before = len(rows)
        for root in roots:
            # The rows are a x b: without a b value the a values need not be computed.
            b_values = [x for v in b_eval(root) for x in b_convert(v)]
            if not b_values:
                continue
            for v in a_eval(root):
                for a in a_convert(v):
                    rows += [(code, a[0], a[1], *b) for b in b_values]
        if len(rows) > before:
            entries.sort.setdefault(code, 1)

    return add


def _none(_: Any) -> list[Any]:
    return []


def extract_index(resource: dict[str, Any], registry: SearchRegistry) -> IndexEntries:
    """Every search value of ``resource``, normalized for equality/range lookups."""
    plan = _plan(str(resource.get("resourceType")), registry)
    entries = IndexEntries()
    for evaluate, add in plan.for_resource(resource):
        values = evaluate(resource)
        if values:
            add(entries, values)
    return entries
