"""KR Core 2.0.0 profiles load; its examples conform; broken copies fail where expected."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from profiles import Validator, has_errors

EXAMPLES = Path(__file__).parent / "examples_krcore"
FILES = sorted(p.name for p in EXAMPLES.glob("*.json"))
KR = "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/"


def _load(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))


def _errors(validator: Validator, resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.expression, i.code) for i in validator.validate(resource) if i.severity == "error"]


def test_krcore_profiles_are_listed(validator: Validator) -> None:
    assert KR + "krcore-patient" in validator.supported_profiles("Patient")
    assert KR + "krcore-encounter" in validator.supported_profiles("Encounter")
    assert KR + "krcore-medicationrequest" in validator.supported_profiles("MedicationRequest")
    assert KR + "krcore-bodyweight" in validator.supported_profiles("Observation")


@pytest.mark.parametrize("name", FILES)
def test_krcore_example_conforms_to_its_profile(validator: Validator, name: str) -> None:
    resource = _load(name)
    claimed = resource["meta"]["profile"][0]
    assert claimed.startswith(KR)
    assert claimed in validator.supported_profiles(resource["resourceType"])
    issues = validator.validate(resource)
    assert not has_errors(issues), [(i.expression, i.message) for i in issues]


def test_krcore_patient_needs_name_text(validator: Validator) -> None:
    resource = _load("Patient-krcore-patient-example-01.json")
    resource["name"][0] = {"use": "official"}
    assert _errors(validator, resource) == [("Patient.name[0].text", "required")]


def test_krcore_patient_needs_birth_date(validator: Validator) -> None:
    resource = _load("Patient-krcore-patient-example-01.json")
    del resource["birthDate"]
    assert _errors(validator, resource) == [("Patient.birthDate", "required")]


def test_krcore_patient_phone_slice_needs_a_value(validator: Validator) -> None:
    resource = _load("Patient-krcore-patient-example-01.json")
    resource["telecom"][0] = {"system": "phone", "use": "home"}
    assert ("Patient.telecom[0].value", "required") in _errors(validator, resource)


def test_derived_profile_inherits_its_base(validator: Validator) -> None:
    """krcore-bodyweight derives from krcore-vitalsigns, which requires the vital-signs category."""
    resource = _load("Observation-krcore-bodyweight-example-01.json")
    resource["category"][0]["coding"][0]["code"] = "laboratory"
    errors = _errors(validator, resource)
    assert ("Observation.category", "required") in errors
