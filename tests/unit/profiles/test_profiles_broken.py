"""Broken copies of the official examples each fail with the right expression and code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from profiles import Validator, has_errors
from tests.unit.profiles.conftest import load_example

Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        target: Any = r
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return apply


def _delete(path: list[Any]) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        target: Any = r
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return apply


def _obs7(r: dict[str, Any]) -> None:
    r["component"] = [{"code": {"coding": [dict(r["code"]["coding"][0])]}}]


# (example, mutation, expected expression, expected code, a word the message must contain)
BINDINGS = [
    ("Patient-example.json", _set(["gender"], "bogus"), "Patient.gender", "AdministrativeGender"),
    (
        "Observation-example.json",
        _set(["status"], "done"),
        "Observation.status",
        "ObservationStatus",
    ),
    ("Encounter-f001.json", _set(["status"], "open"), "Encounter.status", "EncounterStatus"),
    (
        "MedicationRequest-medrx0302.json",
        _set(["intent"], "wish"),
        "MedicationRequest.intent",
        "medicationrequest-intent",
    ),
    ("AuditEvent-example.json", _set(["action"], "Z"), "AuditEvent.action", "audit-event-action"),
    (
        "Provenance-example.json",
        _set(["entity", 0, "role"], "stolen"),
        "Provenance.entity[0].role",
        "provenance-entity-role",
    ),
    (
        "Patient-example.json",
        _set(["telecom", 1, "system"], "beeper"),
        "Patient.telecom[1].system",
        "contact-point-system",
    ),
    (
        "Patient-example.json",
        _set(["contact", 0, "gender"], "x"),
        "Patient.contact[0].gender",
        "administrative-gender",
    ),
    (
        "Observation-blood-pressure.json",
        _set(["component", 1, "valueQuantity", "comparator"], "~"),
        "Observation.component[1].valueQuantity.comparator",
        "quantity-comparator",
    ),
    (
        "MedicationRequest-medrx0301.json",
        _set(["dosageInstruction", 0, "timing", "repeat", "periodUnit"], "hours"),
        "MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit",
        "units-of-time",
    ),
    (
        "Encounter-emerg.json",
        _set(["statusHistory", 2, "status"], "waiting"),
        "Encounter.statusHistory[2].status",
        "encounter-status",
    ),
]

MISSING = [
    ("Observation-example.json", _delete(["code"]), "Observation.code"),
    ("Observation-example.json", _delete(["status"]), "Observation.status"),
    (
        "Observation-blood-pressure.json",
        _delete(["component", 1, "code"]),
        "Observation.component[1].code",
    ),
    ("MedicationRequest-medrx002.json", _delete(["subject"]), "MedicationRequest.subject"),
    ("Encounter-example.json", _delete(["class"]), "Encounter.class"),
    ("AuditEvent-example.json", _delete(["recorded"]), "AuditEvent.recorded"),
    ("Provenance-example.json", _delete(["agent"]), "Provenance.agent"),
]

INVARIANTS = [
    (
        "Observation-example.json",
        _set(["dataAbsentReason"], {"text": "lost"}),
        "Observation",
        "obs-6",
    ),
    ("Observation-example.json", _obs7, "Observation", "obs-7"),
    (
        "Observation-f001.json",
        _set(["referenceRange", 0], {"type": {"text": "normal"}}),
        "Observation.referenceRange[0]",
        "obs-3",
    ),
    (
        "Patient-example.json",
        _set(["contact", 0], {"relationship": [{"text": "friend"}]}),
        "Patient.contact[0]",
        "pat-1",
    ),
    (
        "AuditEvent-example-search.json",
        _set(["entity", 0, "name"], "a name"),
        "AuditEvent.entity[0]",
        "sev-1",
    ),
    (
        "Encounter-emerg.json",
        _set(["period", "end"], "2017-01-31T07:15:00+10:00"),
        "Encounter.period",
        "per-1",
    ),
    (
        "MedicationRequest-medrx0301.json",
        _set(["dispenseRequest", "validityPeriod", "end"], "2014-01-15"),
        "MedicationRequest.dispenseRequest.validityPeriod",
        "per-1",
    ),
    (
        "MedicationRequest-medrx0301.json",
        _set(["subject", "reference"], "#nope"),
        "MedicationRequest.subject",
        "ref-1",
    ),
    (
        "Observation-example.json",
        _delete(["valueQuantity", "system"]),
        "Observation.valueQuantity",
        "qty-3",
    ),
    ("Patient-example.json", _delete(["telecom", 1, "system"]), "Patient.telecom[1]", "cpt-2"),
    (
        "MedicationRequest-medrx0301.json",
        _delete(["dosageInstruction", 0, "timing", "repeat", "periodUnit"]),
        "MedicationRequest.dosageInstruction[0].timing.repeat",
        "tim-2",
    ),
    (
        "Observation-f001.json",
        _set(["referenceRange", 0, "age"], {"low": {"value": 50}, "high": {"value": 10}}),
        "Observation.referenceRange[0].age",
        "rng-2",
    ),
    (
        "MedicationRequest-medrx0301.json",
        _set(["dosageInstruction", 0, "timing", "repeat", "countMax"], 3),
        "MedicationRequest.dosageInstruction[0].timing.repeat",
        "tim-8",
    ),
    ("Patient-f201.json", _set(["photo", 0], {"data": "AAAA"}), "Patient.photo[0]", "att-1"),
    (
        "MedicationRequest-medrx0301.json",
        _set(["contained", 0, "meta"], {"versionId": "2"}),
        "MedicationRequest",
        "dom-4",
    ),
    (
        "Encounter-home.json",
        _set(["location", 0, "location", "reference"], "Location/1"),
        "Encounter",
        "dom-3",
    ),
    ("Patient-example.json", _set(["name", 0, "period"], {}), "Patient.name[0].period", "ele-1"),
    (
        "Patient-glossy.json",
        _set(["extension", 0, "extension"], [{"url": "x", "valueString": "y"}]),
        "Patient.extension[0]",
        "ext-1",
    ),
]

WRONG_TYPES = [
    ("Observation-example.json", _set(["subject"], "Patient/example"), "Observation.subject"),
    (
        "Observation-example.json",
        _set(["valueQuantity", "value"], "abc"),
        "Observation.valueQuantity.value",
    ),
    ("Patient-example.json", _set(["name", 0, "given", 1], 5), "Patient.name[0].given[1]"),
    ("Patient-example.json", _set(["active"], "yes"), "Patient.active"),
    ("Patient-example.json", _set(["birthDate"], "1974-13-25"), "Patient.birthDate"),
    (
        "Observation-blood-pressure.json",
        _set(["component", 0, "valueQuantity", "value"], "107"),
        "Observation.component[0].valueQuantity.value",
    ),
    ("Encounter-example.json", _set(["status"], ["finished"]), "Encounter.status"),
]


def _errors(validator: Validator, resource: dict[str, Any]) -> list[Any]:
    return [i for i in validator.validate(resource) if i.severity in ("error", "fatal")]


@pytest.mark.parametrize(("name", "mutate", "expression", "word"), BINDINGS)
def test_bad_code_in_required_binding(
    validator: Validator, name: str, mutate: Mutation, expression: str, word: str
) -> None:
    resource = load_example(name)
    mutate(resource)
    errors = _errors(validator, resource)
    assert [(e.expression, e.code) for e in errors] == [(expression, "code-invalid")]
    assert word.lower() in errors[0].message.lower()


@pytest.mark.parametrize(("name", "mutate", "expression"), MISSING)
def test_missing_required_element(
    validator: Validator, name: str, mutate: Mutation, expression: str
) -> None:
    resource = load_example(name)
    mutate(resource)
    errors = _errors(validator, resource)
    assert (expression, "required") in [(e.expression, e.code) for e in errors]


@pytest.mark.parametrize(("name", "mutate", "expression", "key"), INVARIANTS)
def test_broken_invariant(
    validator: Validator, name: str, mutate: Mutation, expression: str, key: str
) -> None:
    resource = load_example(name)
    mutate(resource)
    errors = [e for e in _errors(validator, resource) if e.code == "invariant"]
    assert [(e.expression, e.message.split(":")[0]) for e in errors] == [(expression, key)]


def test_reference_range_with_low_only_is_fine(validator: Validator) -> None:
    resource = load_example("Observation-f001.json")
    del resource["referenceRange"][0]["high"]
    assert not has_errors(validator.validate(resource))


@pytest.mark.parametrize(("name", "mutate", "expression"), WRONG_TYPES)
def test_wrong_type(validator: Validator, name: str, mutate: Mutation, expression: str) -> None:
    resource = load_example(name)
    mutate(resource)
    errors = _errors(validator, resource)
    assert expression in [e.expression for e in errors]


def test_unknown_element_is_a_structure_error(validator: Validator) -> None:
    resource = load_example("Patient-example.json")
    resource["nickname"] = "Jim"
    errors = _errors(validator, resource)
    assert [(e.expression, e.code) for e in errors] == [("Patient.nickname", "structure")]


def test_messages_do_not_echo_values(validator: Validator) -> None:
    resource = load_example("Patient-example.json")
    resource["gender"] = "Chalmers-secret"
    resource["birthDate"] = "Chalmers-1974"
    resource["name"][0]["family"] = 12345678
    for issue in validator.validate(resource):
        assert "Chalmers" not in issue.message
        assert "12345678" not in issue.message
