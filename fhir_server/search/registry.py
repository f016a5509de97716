"""Search parameters from official SearchParameter definitions, so search needs no code."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

_DATA = Path(__file__).with_name("data") / "search-parameters.json"

# Parameters whose semantics this server does not implement (absent from /metadata).
UNSUPPORTED = frozenset({"_text", "_content", "_query", "_list", "_has", "_type"})
_BASES_FOR_ALL = ("Resource", "DomainResource")
# AuditEvents are indexed for every access, so only what auditors search by is kept: the
# dropped ones name values MediCore never records (names are PHI; no altid or policy) or
# constants (site, source). Absent from /metadata, like every unsupported parameter.
_NOT_INDEXED: Mapping[str, frozenset[str]] = {
    "AuditEvent": frozenset(
        {
            "agent-name",
            "altid",
            "entity-name",
            "entity-role",
            "entity-type",
            "policy",
            "site",
            "source",
            "_tag",
            "_profile",
            "_security",
            "_source",
        }
    ),
}


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter: the component's definition and its expression."""

    definition: str
    expression: str


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    """One parameter as it applies to one resource type (``expression`` is type-specific)."""

    code: str
    type: str
    expression: str
    url: str
    base: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()


def split_top(expression: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes (parts stripped, empty ones kept)."""
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return parts


def split_union(expression: str) -> list[str]:
    """Split an expression on top-level ``|`` (not inside parentheses or quotes)."""
    return [p for p in split_top(expression, "|") if p]


def _starts_with_type(part: str, resource_type: str) -> bool:
    stripped = part.lstrip("(").strip()
    return (
        stripped == resource_type
        or stripped.startswith(resource_type + ".")
        or (stripped.startswith(resource_type + " "))
    )


def expression_for(expression: str, resource_type: str, base: Iterable[str]) -> str:
    """The part of a multi-base expression that applies to ``resource_type``."""
    if not expression:
        return ""
    if any(b in _BASES_FOR_ALL for b in base):
        return expression
    parts = [p for p in split_union(expression) if _starts_with_type(p, resource_type)]
    return " | ".join(parts)


def _is_utc(zone: tzinfo | None) -> bool:
    """UTC under any name: no offset in January or July (the registry then keeps None)."""
    if zone is None or zone is UTC:
        return True
    return all(
        datetime(2024, month, 1, tzinfo=zone).utcoffset() == timedelta(0) for month in (1, 7)
    )


@functools.cache
def _default_in(zone: tzinfo) -> SearchRegistry:
    return SearchRegistry.default()._copy(zone)


@dataclass(slots=True)
class SearchRegistry:
    """Search parameters per resource type; ``by_url`` resolves composite components."""

    _by_type: dict[str, dict[str, SearchParamDef]] = field(default_factory=dict)
    _common: dict[str, SearchParamDef] = field(default_factory=dict)
    by_url: dict[str, dict[str, Any]] = field(default_factory=dict)
    _merged: dict[str, dict[str, SearchParamDef]] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)  # compiled extractors (extract.py)
    # The hospital's zone: dates without an offset, stored or searched, are read in it.
    # None is UTC. Extraction and parsing must agree, so it lives with the definitions.
    zone: tzinfo | None = None
    clock: Callable[[], float] = time.time  # "now" of the ap prefix, read when parsing

    @classmethod
    @functools.cache
    def default(cls) -> SearchRegistry:
        """The shipped R4 definitions (cached: build once per process)."""
        return cls.load()

    @classmethod
    def configured(cls, extra_dirs: list[str], *, zone: tzinfo | None = None) -> SearchRegistry:
        """The shipped definitions, plus ``MEDICORE_SEARCH_PARAMETERS_DIRS`` when set, read
        in ``MEDICORE_TIMEZONE``: the server and the AuditEvent indexer must extract alike."""
        if extra_dirs:
            registry = cls.load(*map(Path, extra_dirs))
            registry.zone = None if _is_utc(zone) else zone
            return registry
        return cls.default().in_zone(zone)

    def in_zone(self, zone: tzinfo | None) -> SearchRegistry:
        """These definitions with dates read in ``zone`` (own extraction plans)."""
        zone = None if _is_utc(zone) else zone
        if zone == self.zone:
            return self
        if self is SearchRegistry.default():
            return _default_in(zone)
        return self._copy(zone)

    def _copy(self, zone: tzinfo | None) -> SearchRegistry:
        return SearchRegistry(
            {t: dict(p) for t, p in self._by_type.items()},
            dict(self._common),
            dict(self.by_url),
            zone=zone,
            clock=self.clock,
        )

    def with_clock(self, clock: Callable[[], float]) -> SearchRegistry:
        """These definitions with "now" read from ``clock`` (tests set the moment)."""
        copy = self._copy(self.zone)
        copy.clock = clock
        return copy

    @classmethod
    def load(cls, *paths: Path) -> SearchRegistry:
        """Shipped definitions plus SearchParameter/Bundle JSON files or directories."""
        registry = cls()
        for resource in _read_definitions(_DATA):
            registry.add(resource)
        for path in paths:
            files = sorted(Path(path).rglob("*.json")) if Path(path).is_dir() else [Path(path)]
            for file in files:
                for resource in _read_definitions(file):
                    registry.add(resource)
        return registry

    def add(self, resource: Mapping[str, Any]) -> None:
        """Register one SearchParameter resource (later definitions override by code)."""
        if resource.get("resourceType") != "SearchParameter":
            return
        self._merged.clear()
        self.plans.clear()
        base = tuple(resource.get("base") or ())
        url = str(resource.get("url") or "")
        if url:
            self.by_url[url] = dict(resource)
        for resource_type in base:
            expression = expression_for(str(resource.get("expression") or ""), resource_type, base)
            definition = SearchParamDef(
                code=str(resource["code"]),
                type=str(resource["type"]),
                expression=expression,
                url=url,
                base=base,
                targets=_narrowed_targets(expression, tuple(resource.get("target") or ())),
                components=tuple(
                    Component(definition=str(c["definition"]), expression=str(c["expression"]))
                    for c in resource.get("component") or ()
                ),
            )
            if resource_type in _BASES_FOR_ALL:
                self._common[definition.code] = definition
            else:
                self._by_type.setdefault(resource_type, {})[definition.code] = definition

    def params_for(self, resource_type: str) -> Mapping[str, SearchParamDef]:
        """Every parameter that applies to ``resource_type`` (common ones included)."""
        merged = self._merged.get(resource_type)
        if merged is None:
            merged = dict(self._common)
            merged.update(self._by_type.get(resource_type, {}))
            for code in _NOT_INDEXED.get(resource_type, ()):
                merged.pop(code, None)
            self._merged[resource_type] = merged
        return merged

    def supported(self, resource_type: str) -> Mapping[str, SearchParamDef]:
        """The parameters this server really implements, for /metadata."""
        return {
            code: d
            for code, d in self.params_for(resource_type).items()
            if code not in UNSUPPORTED and (d.expression or d.code == "_id")
        }

    def get(self, resource_type: str, code: str) -> SearchParamDef | None:
        return self.params_for(resource_type).get(code)

    def component_type(self, component: Component) -> str:
        """The parameter type of one composite component (from its definition URL)."""
        resource = self.by_url.get(component.definition)
        return str(resource["type"]) if resource else "token"


_RESOLVE_IS = re.compile(r"\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)$")


def _narrowed_targets(expression: str, targets: tuple[str, ...]) -> tuple[str, ...]:
    """``X.where(resolve() is Patient)`` can only point at a Patient, whatever ``target`` says."""
    found = {m.group(1) if (m := _RESOLVE_IS.search(p)) else None for p in split_union(expression)}
    if len(found) == 1 and None not in found:
        return tuple(t for t in found if t is not None)
    return targets


def _read_definitions(path: Path) -> Iterator[Mapping[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("resourceType") == "Bundle":
        for entry in data.get("entry") or ():
            if isinstance(entry.get("resource"), dict):
                yield entry["resource"]
    else:
        yield data
