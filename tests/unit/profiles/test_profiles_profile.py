"""MediCore profiles: cardinality, fixed/pattern values, bindings, slicing, mandatory switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from profiles import Validator, has_errors
from profiles.profile import MEDICORE_DIR
from tests.unit.profiles.conftest import load_example

BASE = "https://medicore.example.org/fhir/StructureDefinition/"
PATIENT = BASE + "medicore-patient"
LAB = BASE + "medicore-lab-observation"
LAB_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
            "display": "Laboratory",
        }
    ]
}


def _patient(*identifiers: dict[str, Any]) -> dict[str, Any]:
    resource = load_example("Patient-example.json")
    resource["meta"] = {"profile": [PATIENT]}
    resource["identifier"] = list(identifiers)
    return resource


def _lab() -> dict[str, Any]:
    resource = load_example("Observation-f001.json")  # LOINC-coded glucose, subject, period
    resource["meta"] = {"profile": [LAB]}
    resource["category"] = [LAB_CATEGORY]
    return resource


def _errors(issues: list[Any]) -> list[tuple[str, str]]:
    return [(i.expression, i.code) for i in issues if i.severity in ("error", "fatal")]


def test_shipped_profiles_are_supported(validator: Validator) -> None:
    assert PATIENT in validator.supported_profiles("Patient")
    assert LAB in validator.supported_profiles("Observation")
    assert validator.supported_profiles("Provenance") == []
    only_medicore = Validator(profile_dirs=[MEDICORE_DIR])
    assert only_medicore.supported_profiles("Patient") == [PATIENT]
    assert only_medicore.supported_profiles("Observation") == [LAB]
    assert only_medicore.supported_profiles("Encounter") == []


def test_patient_with_mrn_conforms(validator: Validator) -> None:
    issues = validator.validate(_patient({"system": "urn:medicore:mrn", "value": "M1"}))
    assert issues == []


def test_patient_without_mrn_fails_on_identifier(validator: Validator) -> None:
    issues = validator.validate(
        _patient({"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "1"})
    )
    assert _errors(issues) == [("Patient.identifier", "required")]
    assert "mrn" in issues[0].message and PATIENT in issues[0].message


def test_patient_with_no_identifier_at_all(validator: Validator) -> None:
    resource = _patient()
    del resource["identifier"]
    assert _errors(validator.validate(resource)) == [
        ("Patient.identifier", "required"),
        ("Patient.identifier", "required"),
    ]


def test_two_mrns_exceed_the_slice_max(validator: Validator) -> None:
    resource = _patient(
        {"system": "urn:medicore:mrn", "value": "1"}, {"system": "urn:medicore:mrn", "value": "2"}
    )
    assert _errors(validator.validate(resource)) == [("Patient.identifier", "structure")]


def test_mrn_without_value_fails_on_that_identifier(validator: Validator) -> None:
    resource = _patient({"use": "usual", "value": "x"}, {"system": "urn:medicore:mrn"})
    assert _errors(validator.validate(resource)) == [("Patient.identifier[1].value", "required")]


def test_hospital_mrn_system_is_configurable() -> None:
    custom = Validator(mrn_system="urn:oid:1.2.410.100.1")
    ok = _patient({"system": "urn:oid:1.2.410.100.1", "value": "7"})
    old = _patient({"system": "urn:medicore:mrn", "value": "7"})
    assert custom.validate(ok) == []
    assert _errors(custom.validate(old)) == [("Patient.identifier", "required")]


def test_lab_observation_conforms(validator: Validator) -> None:
    assert validator.validate(_lab()) == []


def test_lab_observation_needs_laboratory_category(validator: Validator) -> None:
    resource = _lab()
    resource["category"] = [
        {"coding": [{"system": LAB_CATEGORY["coding"][0]["system"], "code": "vital-signs"}]}
    ]
    issues = validator.validate(resource)
    assert _errors(issues) == [("Observation.category", "required")]
    assert "laboratory" in issues[0].message


def test_lab_observation_needs_loinc_code(validator: Validator) -> None:
    resource = _lab()
    resource["code"]["coding"][0]["system"] = "http://snomed.info/sct"
    assert _errors(validator.validate(resource)) == [("Observation.code.coding", "required")]


def test_loinc_slice_needs_a_code(validator: Validator) -> None:
    resource = _lab()
    del resource["code"]["coding"][0]["code"]
    assert _errors(validator.validate(resource)) == [
        ("Observation.code.coding[0].code", "required")
    ]


@pytest.mark.parametrize(
    ("element", "expression"),
    [("subject", "Observation.subject"), ("effectivePeriod", "Observation.effective")],
)
def test_lab_observation_needs_subject_and_time(
    validator: Validator, element: str, expression: str
) -> None:
    resource = _lab()
    del resource[element]
    assert _errors(validator.validate(resource)) == [(expression, "required")]


def test_profile_binding_to_shipped_value_set(validator: Validator) -> None:
    resource = _lab()
    resource["status"] = "unknown"  # valid R4 status, outside the MediCore lab value set
    issues = validator.validate(resource)
    assert _errors(issues) == [("Observation.status", "code-invalid")]
    assert "medicore-lab-status" in issues[0].message
    del resource["meta"]
    assert not has_errors(validator.validate(resource))


def test_unknown_claimed_profile_is_a_warning(validator: Validator) -> None:
    resource = load_example("Encounter-example.json")
    resource["meta"] = {"profile": ["http://example.org/StructureDefinition/nope"]}
    issues = validator.validate(resource)
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("warning", "not-supported", "Encounter.meta.profile[0]")
    ]
    assert not has_errors(issues)


def test_unknown_claimed_profile_can_be_rejected() -> None:
    strict = Validator(reject_unknown_profiles=True)
    resource = load_example("Observation-bmi.json")  # claims the vitalsigns profile
    issues = strict.validate(resource)
    assert _errors(issues) == [("Observation.meta.profile[0]", "not-supported")]


def test_requested_profile_parameter(validator: Validator) -> None:
    resource = load_example("Patient-example.json")  # claims nothing, has no MRN
    assert not has_errors(validator.validate(resource))
    assert _errors(validator.validate(resource, profile=PATIENT)) == [
        ("Patient.identifier", "required")
    ]
    unknown = validator.validate(resource, profile="http://example.org/x")
    assert _errors(unknown) == [("Patient", "not-supported")]


def test_profile_on_the_wrong_type(validator: Validator) -> None:
    resource = load_example("Encounter-example.json")
    resource["meta"] = {"profile": [PATIENT]}
    assert _errors(validator.validate(resource)) == [("Encounter.meta.profile[0]", "invalid")]


def test_mandatory_profile_applies_without_a_claim() -> None:
    strict = Validator(mandatory={"Patient": PATIENT})
    resource = load_example("Patient-example.json")
    assert _errors(strict.validate(resource)) == [("Patient.identifier", "required")]
    resource["identifier"].append({"system": "urn:medicore:mrn", "value": "9"})
    assert not has_errors(strict.validate(resource))
    other = load_example("Observation-example.json")
    assert not has_errors(strict.validate(other))


def test_mandatory_profile_must_be_loaded() -> None:
    with pytest.raises(ValueError, match="not loaded"):
        Validator(mandatory={"Patient": "http://example.org/missing"})


def _write(path: Path, resource: dict[str, Any]) -> None:
    path.write_text(json.dumps(resource), encoding="utf-8")


def test_profiles_loaded_from_a_directory_closed_slicing_and_fixed(tmp_path: Path) -> None:
    sd = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/closed-enc",
        "name": "ClosedEncounter",
        "kind": "resource",
        "type": "Encounter",
        "derivation": "constraint",
        "differential": {
            "element": [
                {
                    "id": "Encounter.identifier",
                    "path": "Encounter.identifier",
                    "slicing": {
                        "discriminator": [{"type": "value", "path": "system"}],
                        "rules": "closed",
                    },
                },
                {
                    "id": "Encounter.identifier:visit",
                    "path": "Encounter.identifier",
                    "sliceName": "visit",
                },
                {
                    "id": "Encounter.identifier:visit.system",
                    "path": "Encounter.identifier.system",
                    "fixedUri": "urn:visit",
                },
                {
                    "id": "Encounter.class",
                    "path": "Encounter.class",
                    "patternCoding": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode"},
                },
                {"id": "Encounter.status", "path": "Encounter.status", "fixedCode": "finished"},
                {"id": "Encounter.subject", "path": "Encounter.subject", "min": 1, "max": "1"},
            ]
        },
    }
    _write(tmp_path / "enc.json", sd)
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    v = Validator(profile_dirs=[MEDICORE_DIR, tmp_path])
    url = sd["url"]
    assert v.supported_profiles("Encounter") == [url]
    resource = load_example("Encounter-f001.json")
    resource["meta"] = {"profile": [url]}
    resource["identifier"] = [
        {"system": "urn:visit", "value": "1"},
        {"system": "urn:other", "value": "2"},
    ]
    resource["class"]["system"] = "http://example.org/other"
    resource["status"] = "in-progress"
    assert sorted(_errors(v.validate(resource))) == [
        ("Encounter.class", "value"),
        ("Encounter.identifier[1]", "value"),
        ("Encounter.status", "value"),
    ]
