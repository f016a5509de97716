"""Validator API: modes, fatal inputs, OperationOutcome shape, finality rules."""

from __future__ import annotations

from typing import Any

import pytest

from profiles import ValidationIssue, Validator, has_errors, is_final, to_operation_outcome
from profiles.structure import loc_to_expression
from tests.unit.profiles.conftest import load_example


@pytest.mark.parametrize(
    ("body", "code", "expression"),
    [
        ([1, 2], "structure", ""),
        ({"id": "x"}, "required", "resourceType"),
        ({"resourceType": "Spaceship"}, "not-supported", "resourceType"),
    ],
)
def test_unusable_bodies_are_fatal(
    validator: Validator, body: Any, code: str, expression: str
) -> None:
    issues = validator.validate(body)
    assert [(i.severity, i.code, i.expression) for i in issues] == [("fatal", code, expression)]


def test_update_mode_needs_an_id(validator: Validator) -> None:
    resource = load_example("Encounter-example.json")
    del resource["id"]
    assert not has_errors(validator.validate(resource, mode="create"))
    issues = validator.validate(resource, mode="update")
    assert [(i.expression, i.code) for i in issues] == [("Encounter.id", "required")]


def test_delete_mode_checks_no_content(validator: Validator) -> None:
    assert validator.validate({"resourceType": "Patient", "gender": "bogus"}, mode="delete") == []


def test_unknown_mode_is_an_error(validator: Validator) -> None:
    issues = validator.validate(load_example("Patient-example.json"), mode="upsert")
    assert [(i.severity, i.expression) for i in issues] == [("error", "mode")]


def test_loc_to_expression() -> None:
    assert loc_to_expression("Patient", ("name", 0, "given")) == "Patient.name[0].given"
    assert loc_to_expression("Observation", ("code", "root")) == "Observation.code.root"
    assert loc_to_expression("Observation", ("x", "function-after[f()]")) == "Observation.x"


def test_has_errors_only_for_error_and_fatal() -> None:
    def issue(sev: Any) -> ValidationIssue:
        return ValidationIssue(sev, "invariant", "Patient", "m")

    assert not has_errors([issue("warning"), issue("information")])
    assert has_errors([issue("warning"), issue("error")])
    assert has_errors([issue("fatal")])


def test_operation_outcome_lists_every_issue() -> None:
    issues = [
        ValidationIssue("error", "code-invalid", "Patient.gender", "bad gender"),
        ValidationIssue("warning", "not-supported", "Patient.meta.profile[0]", "unknown"),
    ]
    outcome = to_operation_outcome(issues)
    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "code-invalid",
                "diagnostics": "bad gender",
                "expression": ["Patient.gender"],
            },
            {
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": "unknown",
                "expression": ["Patient.meta.profile[0]"],
            },
        ],
    }


def test_empty_outcome_says_all_ok(validator: Validator) -> None:
    outcome = validator.to_operation_outcome([])
    assert outcome["issue"] == [
        {"severity": "information", "code": "informational", "diagnostics": "All OK"}
    ]


def test_outcome_is_a_valid_resource(validator: Validator) -> None:
    bad = load_example("Patient-example.json")
    bad["gender"] = "bogus"
    outcome = to_operation_outcome(validator.validate(bad))
    # Structure only: OperationOutcome is not one of the six types we hold bindings for.
    assert validator.validate(outcome) == []


@pytest.mark.parametrize(
    ("rtype", "status", "final"),
    [
        ("Observation", "final", True),
        ("Observation", "amended", True),
        ("Observation", "corrected", True),
        ("Observation", "preliminary", False),
        ("Observation", "registered", False),
        ("MedicationRequest", "completed", True),
        ("MedicationRequest", "stopped", True),
        ("MedicationRequest", "cancelled", True),
        ("MedicationRequest", "active", False),
        ("Encounter", "finished", True),
        ("Encounter", "cancelled", True),
        ("Encounter", "in-progress", False),
        ("Provenance", None, True),
        ("Patient", "final", False),
        ("AuditEvent", None, False),
    ],
)
def test_is_final(rtype: str, status: str | None, final: bool) -> None:
    resource: dict[str, Any] = {"resourceType": rtype}
    if status is not None:
        resource["status"] = status
    assert is_final(resource) is final


def test_is_final_on_examples() -> None:
    assert is_final(load_example("Observation-example.json"))  # status final
    assert not is_final(load_example("MedicationRequest-medrx0302.json"))  # active
    assert not is_final(load_example("Encounter-example.json"))  # in-progress
    assert is_final(load_example("Provenance-signature.json"))
