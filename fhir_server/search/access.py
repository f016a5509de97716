"""What a caller may read, as criteria the stores compile into every query they run.

``AccessRules`` holds, per resource type, the alternatives (OR) of criteria (AND) that a
readable resource meets; a type missing from it is unreadable. ``confine`` rewrites a
parsed query so that its matches, its total, its order, its chains, its ``_has`` and its
includes only ever see readable rows: the narrowing is part of the query the store runs,
never a filter applied to a page afterwards. ``allows`` evaluates the same criteria on one
resource's index entries (reads by id, writes), so both paths make one decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fhir_server.search.extract import IndexEntries
from fhir_server.search.query import (
    ALL,
    ANY,
    CHAIN,
    HAS,
    ID,
    REFERENCE,
    TOKEN,
    TYPE,
    ChainValue,
    Criterion,
    HasValue,
    Include,
    ReferenceValue,
    SearchQuery,
    TokenValue,
)

Alternative = tuple[Criterion, ...]  # criteria AND-ed; () = every resource of the type


class AccessDenied(Exception):
    """The query needs a type the caller may not read (-> 403 naming ``param``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Per type of the server, the alternatives a readable resource meets (none: the type
    is unreadable; see the module docstring)."""

    by_type: Mapping[str, tuple[Alternative, ...]] = field(default_factory=dict)

    def readable(self, resource_type: str) -> bool:
        return bool(self.by_type.get(resource_type))

    def unrestricted(self, resource_type: str) -> bool:
        return () in self.by_type.get(resource_type, ())

    def criterion(
        self, resource_types: tuple[str, ...], *, typed: bool = False
    ) -> Criterion | None:
        """One criterion confining rows of ``resource_types`` (None: all are readable).

        Alternatives carry a TYPE criterion when the rows may be of several types (or
        ``typed``), so each type keeps its own rule; an unreadable type adds none.
        """
        if all(self.unrestricted(t) for t in resource_types):
            return None
        typed = typed or len(resource_types) != 1
        alternatives: list[Alternative] = []
        for resource_type in resource_types:
            for alternative in self.by_type.get(resource_type, ()):
                prefix = (Criterion("_type", TYPE, (resource_type,)),) if typed else ()
                alternatives.append((*prefix, *alternative))
        return Criterion(param="_access", kind=ANY, values=tuple(alternatives))


def confine(query: SearchQuery, *, search: AccessRules, read: AccessRules) -> SearchQuery:
    """``query`` narrowed to what the caller may search (matches, chains, ``_has``) and
    read (included resources); raises AccessDenied for a type it names but may not read."""
    named = _named_types(query)
    for resource_type in query.resource_types:
        if resource_type in named and not search.readable(resource_type):
            raise AccessDenied("_type", f"you may not search {resource_type}")
    types = tuple(t for t in query.resource_types if search.readable(t))
    if not types:
        raise AccessDenied("_type", "you may not search any of these resource types")
    criteria = [_confine_criterion(c, search) for c in query.criteria]
    own = search.criterion(types)
    if own is not None:
        # One alternative of a single type: its criteria join the query's own, so the store
        # may drive the query from them (e.g. the patient reference of a patient token).
        single = len(own.values) == 1 and len(types) == 1
        criteria += list(own.values[0]) if single else [own]
    return replace(
        query,
        resource_types=types,
        criteria=tuple(criteria),
        include=tuple(_confine_include(i, read) for i in query.include),
        revinclude=tuple(_confine_include(i, read) for i in query.revinclude),
    )


def _named_types(query: SearchQuery) -> set[str]:
    """Types the client asked for by name (a type-level URL or ``_type``)."""
    if len(query.resource_types) == 1:
        return set(query.resource_types)
    return {t for name, value in query.params if name == "_type" for t in value.split(",")}


def _confine_criterion(criterion: Criterion, rules: AccessRules) -> Criterion:
    """Chains and ``_has`` cross only into readable types, and only see readable rows."""
    if criterion.kind == CHAIN:
        targets: list[tuple[str, Criterion]] = []
        for target, inner in criterion.values[0].targets:
            if rules.readable(target):
                confined = _confine_criterion(inner, rules)
                targets.append((target, _with_rule(confined, target, rules)))
        if not targets:
            raise AccessDenied(criterion.param, "the chain leads into a type you may not search")
        return replace(criterion, values=(ChainValue(tuple(targets)),))
    if criterion.kind == HAS:
        has: HasValue = criterion.values[0]
        if not rules.readable(has.source_type):
            raise AccessDenied(f"_has:{has.source_type}", f"you may not search {has.source_type}")
        inner = _with_rule(_confine_criterion(has.inner, rules), has.source_type, rules)
        return replace(criterion, values=(replace(has, inner=inner),))
    return criterion


def _with_rule(inner: Criterion, resource_type: str, rules: AccessRules) -> Criterion:
    rule = rules.criterion((resource_type,))
    if rule is None:
        return inner
    return Criterion(param=inner.param, kind=ALL, values=(inner, rule))


def _confine_include(include: Include, rules: AccessRules) -> Include:
    """The rows an include may add: of readable types, each meeting its type's rule. Every
    type is named: a stored reference may point at a type its parameter does not list."""
    return replace(include, access=rules.criterion(tuple(rules.by_type), typed=True))


# ---- one resource ------------------------------------------------------------------------


def allows(
    rules: AccessRules, resource_type: str, resource_id: str | None, entries: IndexEntries
) -> bool:
    """Whether one resource (its index entries) meets its type's rule."""
    return any(
        all(_holds(c, resource_type, resource_id, entries) for c in alternative)
        for alternative in rules.by_type.get(resource_type, ())
    )


def _holds(
    criterion: Criterion, resource_type: str, resource_id: str | None, entries: IndexEntries
) -> bool:
    """The criteria access rules are made of, on index entries; any other kind fails
    closed (rules come from scopes and the patient context, never from the client)."""
    kind = criterion.kind
    if kind == TYPE:
        return resource_type in criterion.values
    if kind == ID:
        return resource_id in criterion.values
    if kind == TOKEN and not criterion.negate:
        tokens = [(s, c) for p, s, c in entries.tokens if p == criterion.param]
        return any(_token_hit(v, tokens) for v in criterion.values)
    if kind == REFERENCE:
        refs = [(t, i) for p, t, i in entries.references if p == criterion.param]
        return any(_reference_hit(v, refs) for v in criterion.values)
    if kind == ALL:
        return all(_holds(c, resource_type, resource_id, entries) for c in criterion.values)
    if kind == ANY:
        return any(
            all(_holds(c, resource_type, resource_id, entries) for c in alternative)
            for alternative in criterion.values
        )
    return False


def _token_hit(value: TokenValue, tokens: list[tuple[str, str]]) -> bool:
    return any(
        (value.code is None or code == value.code)
        and (value.system is None or system == value.system)
        for system, code in tokens
    )


def _reference_hit(value: ReferenceValue, refs: list[tuple[str, str]]) -> bool:
    return any(
        ref_id == value.id and (rtype == value.type if value.type is not None else rtype != "")
        for rtype, ref_id in refs
    )


__all__ = ["AccessDenied", "AccessRules", "allows", "confine"]
