"""ORU^R01 on our own messages: every value type, ranges, flags, corrections."""

from __future__ import annotations

from typing import Any

from converters import convert

from .support import codes, converted, entries, one, raw, resources

LAB = "urn:medicore:hl7:id:MEDILAB"


def _by_code(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obs in resources(bundle, "Observation"):
        (code,) = codes(obs["code"])
        found[code + "/" + obs["identifier"][0]["value"].rsplit("/", 1)[-1]] = obs
    return found


def _obs(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    (obs,) = [o for o in resources(bundle, "Observation") if code in codes(o["code"])]
    return obs


def test_one_observation_per_obx() -> None:
    bundle = converted("own/oru_r01.hl7").bundle
    assert len(resources(bundle, "Observation")) == 11


def test_patient_and_visit_are_only_ensured() -> None:
    bundle = converted("own/oru_r01.hl7").bundle
    (patient,) = entries(bundle, "Patient")
    assert patient["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:oid:2.16.840.1.113883.3.9999|MC-1001",
    }
    (visit,) = entries(bundle, "Encounter")
    assert visit["request"]["method"] == "POST"
    glucose = _obs(bundle, "2345-7")
    assert glucose["subject"] == {"reference": patient["fullUrl"]}
    assert glucose["encounter"] == {"reference": visit["fullUrl"]}


def test_numeric_with_ucum() -> None:
    glucose = _obs(converted("own/oru_r01.hl7").bundle, "2345-7")
    assert glucose["valueQuantity"] == {
        "value": 105,
        "unit": "milligram per deciliter",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert glucose["status"] == "final"
    assert glucose["identifier"] == [{"system": LAB, "value": "FL-88/LN/2345-7"}]
    assert glucose["referenceRange"][0]["low"]["value"] == 70
    assert glucose["referenceRange"][0]["high"]["value"] == 99
    assert glucose["referenceRange"][0]["text"] == "70-99"
    assert glucose["interpretation"][0]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": "H",
        }
    ]
    assert glucose["effectiveDateTime"] == "2024-03-05T09:30:00+09:00"
    assert glucose["note"] == [{"text": "Fasting sample."}]
    assert glucose["performer"][0]["display"] == "Yuna Choi"
    assert {b["identifier"]["value"] for b in glucose["basedOn"]} == {"PL-77", "FL-88"}


def test_structured_numeric_comparator_and_ratio() -> None:
    bundle = converted("own/oru_r01.hl7").bundle
    creatinine = _obs(bundle, "2160-0")
    assert creatinine["valueQuantity"]["comparator"] == "<"
    assert creatinine["valueQuantity"]["value"] == 0.5
    assert creatinine["referenceRange"][0]["low"]["value"] == 0.7
    assert creatinine["referenceRange"][0]["high"]["value"] == 1.3
    assert codes(creatinine["interpretation"][0]) == {"L"}
    rubella = _obs(bundle, "5388-4")
    assert rubella["valueRatio"] == {"numerator": {"value": 1}, "denominator": {"value": 128}}


def test_text_values() -> None:
    bundle = converted("own/oru_r01.hl7").bundle
    assert _obs(bundle, "5778-6")["valueString"] == "Straw"
    assert _obs(bundle, "11493-4")["valueString"] == "Line one\nLine two"
    formatted = _obs(bundle, "18769-0")
    assert formatted["valueString"] == "First\nSecond & third"
    assert formatted["status"] == "preliminary"


def test_coded_and_date_values() -> None:
    bundle = converted("own/oru_r01.hl7").bundle
    culture = _obs(bundle, "600-7")
    assert culture["valueCodeableConcept"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "3092008", "display": "Staphylococcus aureus"}
    ]
    assert _obs(bundle, "11778-8")["valueDateTime"] == "2024-10-01"
    assert _obs(bundle, "8665-2")["valueDateTime"] == "2024-01-01T12:30:00+09:00"


def test_sub_ids_and_non_ucum_units() -> None:
    found = _by_code(converted("own/oru_r01.hl7").bundle)
    first, second = found["2093-3/1"], found["2093-3/2"]
    assert first["identifier"][0]["value"] == "FL-88/LN/2093-3/1"
    assert second["identifier"][0]["value"] == "FL-88/LN/2093-3/2"
    assert first["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert second["valueQuantity"] == {"value": 150, "unit": "mmol/L"}  # OBX-6.3 is local
    assert first["referenceRange"][0]["high"]["value"] == 200
    assert "low" not in first["referenceRange"][0]


def test_correction_updates_same_observation() -> None:
    final = converted("own/oru_r01.hl7").bundle
    corrected = converted("own/oru_r01_corrected.hl7").bundle
    original = next(
        e for e in entries(final, "Observation") if "2345-7" in codes(e["resource"]["code"])
    )
    (update,) = entries(corrected, "Observation")
    assert update["request"] == original["request"]
    assert update["request"]["method"] == "PUT"
    assert update["fullUrl"] == original["fullUrl"]
    assert update["resource"]["status"] == "corrected"
    assert update["resource"]["valueQuantity"]["value"] == 95


def test_replay_is_deterministic() -> None:
    assert convert(raw("own/oru_r01.hl7")).bundle == convert(raw("own/oru_r01.hl7")).bundle


def test_provenance_targets_every_result() -> None:
    bundle = converted("own/oru_r01.hl7").bundle
    prov = one(bundle, "Provenance")
    assert len(prov["target"]) == 13  # Patient, Encounter, 11 Observations
