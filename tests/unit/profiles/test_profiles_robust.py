"""Garbage in any element never raises: it always comes back as issues (a 4xx, never a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from profiles import ValidationIssue, Validator, has_errors
from tests.unit.profiles.conftest import load_example

GARBAGE: list[Any] = [5, "x", [], {}, [1], [{}], None, True, {"a": 1}]
ONE_PER_TYPE = [
    "Patient-example.json",
    "Encounter-emerg.json",
    "MedicationRequest-medrx0301.json",
    "Observation-blood-pressure.json",
    "Provenance-example.json",
    "AuditEvent-example-error.json",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if len(prefix) >= 3:
        return out
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value[:2])
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


@pytest.mark.parametrize("name", ONE_PER_TYPE)
def test_garbage_anywhere_is_reported_not_raised(validator: Validator, name: str) -> None:
    original = load_example(name)
    for path in _paths(original):
        for junk in GARBAGE:
            resource = load_example(name)
            target: Any = resource
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = junk
            issues = validator.validate(resource)
            assert all(isinstance(i, ValidationIssue) for i in issues)


@pytest.mark.parametrize("junk", [[], None, ""])
def test_empty_values_are_errors(validator: Validator, junk: Any) -> None:
    resource = load_example("Patient-example.json")
    resource["name"] = junk
    issues = validator.validate(resource)
    assert has_errors(issues)
    assert "Patient.name" in [i.expression for i in issues]
