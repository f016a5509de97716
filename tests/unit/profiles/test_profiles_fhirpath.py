"""The native invariants agree with fhirpathpy wherever fhirpathpy can run the expression."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from profiles.elements import BACKBONE_TYPES, DATA_DIR, ElementTable, Node, element_table
from profiles.invariants import SKIPPED, UCUM, InvariantSet
from tests.unit.profiles.conftest import EXAMPLE_FILES, load_example
from tests.unit.profiles.test_profiles_broken import INVARIANTS

SIX = ("Patient", "Encounter", "MedicationRequest", "Observation", "Provenance", "AuditEvent")
CONSTRAINTS = json.loads((DATA_DIR / "constraints.json").read_text())
INVARIANT_SET = InvariantSet(CONSTRAINTS, SIX)
# Expressions fhirpathpy cannot run: hasValue()/htmlChecks() are not implemented, and the
# dom-3 text is abbreviated in the registry.
NOT_EVALUABLE = {"per-1", "age-1", "cnt-3", "txt-1", "txt-2", "dom-3", "rng-2", "ele-1"}
_COMPILED: dict[str, Any] = {}


def _fhirpath(expression: str, node: Node) -> bool:
    """Evaluate from the root resource so the R4 model types the node (choice elements)."""
    path = f"{node.expression}.select({expression})"
    fn = _COMPILED.get(path)
    if fn is None:
        fn = _COMPILED[path] = fhirpathpy.compile(path, models["r4"])
    context = {"resource": node.resource, "rootResource": node.root, "ucum": UCUM}
    result = fn(node.root, context)
    return result in ([True], [])


def walk(table: ElementTable, resource: dict[str, Any]) -> Iterator[Node]:
    """Every complex node of a resource (contained ones included), depth first."""
    rt = resource.get("resourceType")
    if isinstance(rt, str) and rt in table.children:
        yield from _walk(table, rt, resource, rt, resource, resource)


def _walk(
    table: ElementTable,
    type_path: str,
    value: dict[str, Any],
    expr: str,
    resource: dict[str, Any],
    root: dict[str, Any],
) -> Iterator[Node]:
    yield Node(type_path, value, expr, resource, root)
    for key, raw in value.items():
        child = (table.children.get(type_path) or {}).get(key)
        if child is None:
            continue
        for i, item in enumerate(raw if isinstance(raw, list) else [raw]):
            if not isinstance(item, dict):
                continue
            sub = f"{expr}.{key}[{i}]" if isinstance(raw, list) else f"{expr}.{key}"
            if child.type == "Resource":
                inner = item.get("resourceType")
                if isinstance(inner, str) and inner in table.children:
                    yield from _walk(table, inner, item, sub, item, root)
            elif child.type in BACKBONE_TYPES:
                yield from _walk(table, child.path, item, sub, resource, root)
            elif child.type in table.children:
                yield from _walk(table, child.type, item, sub, resource, root)


def _cases() -> list[tuple[str, dict[str, Any]]]:
    cases = [(name, load_example(name)) for name in EXAMPLE_FILES]
    for name, mutate, _expr, key in INVARIANTS:
        broken = load_example(name)
        mutate(broken)
        cases.append((f"{name}:{key}", broken))
    return cases


def test_every_evaluated_invariant_comes_from_the_definitions() -> None:
    from_sd = {c["key"] for items in CONSTRAINTS.values() for c in items}
    ours = INVARIANT_SET.keys()
    assert from_sd - ours == set(SKIPPED)
    assert {"obs-6", "obs-7", "per-1", "ref-1"} <= ours


@pytest.mark.parametrize(
    ("label", "resource"), _cases(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_native_agrees_with_fhirpathpy(label: str, resource: dict[str, Any]) -> None:
    checked = 0
    for node in walk(element_table(), resource):
        for inv in INVARIANT_SET.by_type.get(node.type_path, ()):
            if inv.key in NOT_EVALUABLE or (inv.root_only and node.value is not node.root):
                continue
            native = inv.check(node.value, node)
            assert native == _fhirpath(inv.expression, node), (inv.key, node.expression)
            checked += 1
    assert checked > 0


def test_broken_copies_really_break_in_fhirpathpy_too() -> None:
    failing = set()
    for _label, resource in _cases():
        for node in walk(element_table(), resource):
            for inv in INVARIANT_SET.by_type.get(node.type_path, ()):
                if inv.key in NOT_EVALUABLE or (inv.root_only and node.value is not node.root):
                    continue
                if not _fhirpath(inv.expression, node):
                    failing.add(inv.key)
    assert {"obs-6", "obs-7", "obs-3", "pat-1", "sev-1", "ref-1", "qty-3", "cpt-2"} <= failing
