"""The direct JSON walks agree with fhirpathpy on the official examples."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_server.search.parse import SUPPORTED_TYPES
from fhir_server.search.paths import compile_fast, compile_fhirpath
from fhir_server.search.registry import SearchRegistry

EXAMPLES = Path(__file__).parents[2] / "integration" / "search" / "examples"
REGISTRY = SearchRegistry.default()


def _examples(resource_type: str) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(EXAMPLES.glob(f"{resource_type}-*.json"))
    ]


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for resource_type in SUPPORTED_TYPES:
        for code, definition in sorted(REGISTRY.params_for(resource_type).items()):
            expression = definition.expression
            if not expression or "resolve()" in expression:
                continue
            expression = expression.replace("DomainResource.", f"{resource_type}.")
            expression = expression.replace("Resource.", f"{resource_type}.")
            if compile_fast(expression, root_type=resource_type) is None:
                continue
            cases.append((resource_type, code, expression))
    return cases


def _of_type(expression: str) -> str:
    """Search expressions mean ``ofType``: fhirpathpy's ``as`` empties multi-item input."""
    expression = re.sub(r"\(([^()]*?) as (\w+)\)", r"\1.ofType(\2)", expression)
    return expression.replace(".as(", ".ofType(")


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


def _canonical(values: list[Any]) -> list[str]:
    return sorted(json.dumps(v, sort_keys=True, default=_plain) for v in values)


@pytest.mark.parametrize(("resource_type", "code", "expression"), _cases())
def test_fast_walk_agrees_with_fhirpathpy(resource_type: str, code: str, expression: str) -> None:
    fast = compile_fast(expression, root_type=resource_type)
    assert fast is not None
    reference = compile_fhirpath(_of_type(expression))
    for resource in _examples(resource_type):
        expected = reference(resource)
        assert _canonical(fast(resource)) == _canonical(expected), (resource["id"], code)


def test_only_computed_expressions_need_fhirpathpy() -> None:
    slow = [
        f"{resource_type}.{code}"
        for resource_type in SUPPORTED_TYPES
        for code, definition in REGISTRY.supported(resource_type).items()
        if definition.expression
        and compile_fast(definition.expression, root_type=resource_type) is None
    ]
    assert slow == ["Patient.deceased"]


def test_composite_components_agree() -> None:
    """fhirpathpy cannot type a bare component, so compare against the absolute path."""
    observations = _examples("Observation")
    checked = 0
    for definition in REGISTRY.params_for("Observation").values():
        roots = [r.strip() for r in definition.expression.split("|")]
        for component in definition.components:
            fast = compile_fast(component.expression, root_type=None)
            assert fast is not None, component.expression
            for root in roots:
                walk_root = compile_fast(root, root_type="Observation")
                assert walk_root is not None
                parts = [p.strip() for p in component.expression.split("|")]
                absolute = " | ".join(f"{root}.{p}" for p in parts)
                reference = compile_fhirpath(_of_type(absolute))
                for obs in observations:
                    walked = [v for node in walk_root(obs) for v in fast(node)]
                    expected = reference(obs)
                    assert _canonical(walked) == _canonical(expected), (obs["id"], absolute)
                    checked += bool(expected)
    assert checked > 10


def test_resolve_is_filters_by_reference_type() -> None:
    walk = compile_fast("Observation.subject.where(resolve() is Patient)", root_type="Observation")
    assert walk is not None
    patient = {"resourceType": "Observation", "subject": {"reference": "Patient/1"}}
    group = {"resourceType": "Observation", "subject": {"reference": "Group/1"}}
    absolute = {"resourceType": "Observation", "subject": {"reference": "http://x/fhir/Patient/2"}}
    assert walk(patient) == [{"reference": "Patient/1"}]
    assert walk(group) == []
    assert walk(absolute) == [{"reference": "http://x/fhir/Patient/2"}]


def test_where_equality() -> None:
    walk = compile_fast("Patient.telecom.where(system='email')", root_type="Patient")
    assert walk is not None
    patient = {
        "resourceType": "Patient",
        "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
    }
    assert walk(patient) == [{"system": "email", "value": "a@b"}]
