"""The R4 element table shipped in data/: the children of each type path, with their types."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
BACKBONE_TYPES = frozenset({"BackboneElement", "Element"})
RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "MedicationRequest",
    "Observation",
    "Provenance",
    "AuditEvent",
)


@dataclass(frozen=True, slots=True)
class Child:
    """What a JSON key of a node means: its element definition path and concrete type."""

    path: str
    type: str
    is_list: bool
    binding: str | None


@dataclass(frozen=True, slots=True)
class Node:
    """A complex value met during the walk, with where it sits."""

    type_path: str
    value: dict[str, Any]
    expression: str
    resource: dict[str, Any]
    root: dict[str, Any]


def _upper_first(code: str) -> str:
    return code[:1].upper() + code[1:]


class ElementTable:
    """Children of every resource/datatype/backbone path, with choice types expanded."""

    def __init__(self, elements: dict[str, dict[str, Any]]) -> None:
        self.children: dict[str, dict[str, Child]] = {}
        for path, el in elements.items():
            if "." not in path:
                continue
            parent, name = path.rsplit(".", 1)
            is_list = el.get("max", "1") != "1"
            binding = el.get("binding")
            kids = self.children.setdefault(parent, {})
            if "ref" in el:
                kids[name] = Child(el["ref"], "BackboneElement", is_list, binding)
                continue
            types = el.get("types") or ["BackboneElement"]
            if name.endswith("[x]"):
                stem = name[:-3]
                for t in types:
                    kids[stem + _upper_first(t)] = Child(path, t, is_list, binding)
            else:
                kids[name] = Child(path, types[0], is_list, binding)

    def keys_of_types(self, type_path: str, types: frozenset[str]) -> tuple[tuple[str, str], ...]:
        """(json key, type) of the children of type_path whose type is in types (the
        walker keeps the answer in its plan per type path)."""
        kids = self.children.get(type_path) or {}
        return tuple((k, c.type) for k, c in kids.items() if c.type in types)


@cache
def element_table() -> ElementTable:
    """The shared table, loaded once per process."""
    return ElementTable(json.loads((DATA_DIR / "elements.json").read_text()))
