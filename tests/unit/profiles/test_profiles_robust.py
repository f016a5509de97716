"""Garbage in any element never raises: it always comes back as issues (a 4xx, never a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from profiles import ValidationIssue, Validator, has_errors
from tests.unit.profiles.conftest import load_example
from tests.unit.profiles.element_paths import element_paths

GARBAGE: list[Any] = [5, "x", [], {}, [1], [{}], None, True, {"a": 1}]
ONE_PER_TYPE = [
    "Patient-example.json",
    "Encounter-emerg.json",
    "MedicationRequest-medrx0301.json",
    "Observation-blood-pressure.json",
    "Provenance-example.json",
    "AuditEvent-example-error.json",
]


def _paths(value: Any) -> list[tuple[Any, ...]]:
    return list(element_paths(value, depth=3))


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
