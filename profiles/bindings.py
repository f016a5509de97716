"""R4 required bindings: a coded value outside its value set is an error naming both."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from profiles.elements import DATA_DIR, ElementTable, element_table
from profiles.issues import ValidationIssue

MIME_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$")


@dataclass(frozen=True, slots=True)
class ValueSet:
    """An expanded value set: its canonical url, a human name and its codes."""

    url: str
    name: str
    codes: frozenset[str]
    open: bool = False

    def contains(self, code: str) -> bool:
        if self.open:
            return bool(MIME_TYPE.match(code))
        return code in self.codes


class Terminology:
    """The value sets we can check against, keyed by canonical url (version stripped)."""

    def __init__(self, valuesets: dict[str, ValueSet]) -> None:
        self.valuesets = dict(valuesets)

    def get(self, url: str) -> ValueSet | None:
        return self.valuesets.get(url.split("|", 1)[0])

    def add(self, vs: ValueSet) -> None:
        self.valuesets[vs.url] = vs

    def add_resource(self, resource: dict[str, Any]) -> bool:
        """Add a ValueSet resource that lists its concepts explicitly; False if it cannot."""
        url = resource.get("url")
        includes = (resource.get("compose") or {}).get("include") or []
        codes: set[str] = set()
        for inc in includes:
            concepts = inc.get("concept")
            if not concepts:
                return False
            codes.update(c["code"] for c in concepts if "code" in c)
        if not isinstance(url, str) or not codes:
            return False
        name = resource.get("name") or resource.get("id") or url
        self.add(ValueSet(url, str(name), frozenset(codes)))
        return True


@cache
def base_terminology() -> Terminology:
    """The R4 required value sets shipped in data/valuesets.json."""
    raw = json.loads((DATA_DIR / "valuesets.json").read_text())
    return Terminology(
        {
            url: ValueSet(url, v["name"], frozenset(v["codes"]), bool(v.get("open")))
            for url, v in raw.items()
        }
    )


def code_issue(
    vs: ValueSet, value: Any, *, element: str, expression: str
) -> ValidationIssue | None:
    """Check one bound value (code, Coding or CodeableConcept) against a value set."""
    codes: list[Any]
    if isinstance(value, str):
        codes = [value]
    elif isinstance(value, dict) and "coding" in value:
        codes = [c.get("code") for c in value.get("coding") or [] if isinstance(c, dict)]
    elif isinstance(value, dict):
        codes = [value.get("code")]
    else:
        return None
    if any(isinstance(c, str) and vs.contains(c) for c in codes):
        return None
    return ValidationIssue(
        "error",
        "code-invalid",
        expression,
        f"The value of {element} is not in the required value set '{vs.name}' ({vs.url})",
    )


class BindingIndex:
    """Required bindings indexed by the node type that owns the bound element."""

    def __init__(self, table: ElementTable, terminology: Terminology) -> None:
        self.by_parent: dict[str, tuple[tuple[str, str, ValueSet], ...]] = {}
        for parent, kids in table.children.items():
            bound = []
            for key, child in kids.items():
                vs = terminology.get(child.binding) if child.binding else None
                if vs is not None:
                    bound.append((key, child.path, vs))
            if bound:
                self.by_parent[parent] = tuple(bound)


@cache
def binding_index() -> BindingIndex:
    """The shared index over the R4 element table and value sets."""
    return BindingIndex(element_table(), base_terminology())
