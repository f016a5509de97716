"""Golden tests on public samples: clinical content compared with FHIR-Converter's output."""

from __future__ import annotations

from typing import Any

import pytest

from converters import ConversionError, convert, split_batch

from .support import codes, converted, expected, one, raw, resources, same_instant, validate_bundle

MS = "microsoft-FHIR-Converter__"
ADT_WITH_EXPECTED = [
    "ADT-A01-01",
    "ADT-A03-01",
    "ADT-A04-02",
    "ADT-A08-01",
    "ADT01-23",
    "ADT04-251",
]


def _values(resource: dict[str, Any]) -> set[str]:
    return {i["value"] for i in resource.get("identifier", []) if "value" in i}


@pytest.mark.parametrize("name", ADT_WITH_EXPECTED)
def test_adt_patient_matches_fhir_converter(name: str) -> None:
    ours = one(converted(f"public/{MS}{name}.hl7").bundle, "Patient")
    theirs = one(expected(f"{MS}{name}.expected.json"), "Patient")
    assert ours["gender"] == theirs["gender"]
    assert ours["birthDate"] == theirs["birthDate"]
    # FHIR-Converter also folds NK1/GT1/IN2 people into Patient; ours keeps PID only.
    assert {n["family"] for n in ours["name"]} <= {n.get("family") for n in theirs["name"]}
    pid_values = _values(ours) - {"DLN-123"}  # PID-20 driver's licence: theirs drops it
    assert pid_values <= _values(theirs)


@pytest.mark.parametrize("name", ["ADT-A01-01", "ADT-A03-01", "ADT-A08-01", "ADT01-23"])
def test_adt_encounter_matches_fhir_converter(name: str) -> None:
    ours = one(converted(f"public/{MS}{name}.hl7").bundle, "Encounter")
    theirs = one(expected(f"{MS}{name}.expected.json"), "Encounter")
    assert ours["status"] == theirs["status"]
    assert ours["class"]["code"] == theirs["class"]["code"]
    assert _values(ours) <= _values(theirs)
    assert same_instant(ours["period"]["start"], theirs["period"]["start"])
    if "end" in theirs["period"]:
        assert same_instant(ours["period"]["end"], theirs["period"]["end"])


def test_a04_with_discharge_time_is_finished() -> None:
    """Deviation from FHIR-Converter (which says in-progress): PV1-45 is valued."""
    enc = one(converted(f"public/{MS}ADT-A04-02.hl7").bundle, "Encounter")
    assert enc["status"] == "finished"
    assert enc["period"]["end"] == "2015-02-09T11:34:19+01:10"


def test_visit_without_number_writes_no_encounter() -> None:
    bundle = converted(f"public/{MS}ADT04-251.hl7").bundle
    assert resources(bundle, "Encounter") == []


def _observation_value(obs: dict[str, Any]) -> Any:
    if "valueQuantity" in obs:
        return ("Q", obs["valueQuantity"]["value"], obs["valueQuantity"].get("code"))
    if "valueString" in obs:
        return ("S", obs["valueString"])
    if "valueCodeableConcept" in obs:
        return ("C", frozenset(codes(obs["valueCodeableConcept"])))
    return None


def test_cbc_panel_observations_match_fhir_converter() -> None:
    bundle = converted(f"public/{MS}LRI_2.0-NG_CBC_Typ_Message.hl7").bundle
    ours = resources(bundle, "Observation")
    theirs = {
        next(iter(codes(o["code"]))): o
        for o in resources(expected(f"{MS}LRI_2.0-NG_CBC_Typ_Message.expected.json"), "Observation")
    }
    assert len(ours) == 28
    for obs in ours:
        (code,) = codes(obs["code"])
        other = theirs[code]
        assert _observation_value(obs) == _observation_value(other), code
        assert obs["status"] == other["status"]
        assert codes(obs["interpretation"][0]) == codes(other["interpretation"][0])
        if "referenceRange" in other:
            assert obs["referenceRange"][0]["text"] == other["referenceRange"][0]["text"]
        assert same_instant(obs["effectiveDateTime"], other["effectiveDateTime"])


def test_sn_result_matches_fhir_converter() -> None:
    obs = one(converted(f"public/{MS}ORU-R01-RMGEAD.hl7").bundle, "Observation")
    other = one(expected(f"{MS}ORU-R01-RMGEAD.expected.json"), "Observation")
    assert obs["valueQuantity"] == other["valueQuantity"] == {"value": 182, "unit": "mg/dl"}
    assert codes(obs["interpretation"][0]) == codes(other["interpretation"][0]) == {"H"}
    assert obs["referenceRange"][0]["text"] == "70_105"
    assert obs["referenceRange"][0]["low"]["value"] == 70
    assert obs["referenceRange"][0]["high"]["value"] == 105
    assert obs["status"] == other["status"] == "final"


def test_oru_with_patient_and_specimen_level_obx() -> None:
    bundle = converted(f"public/{MS}ORU-R01-01.hl7").bundle
    observations = resources(bundle, "Observation")
    by_code = {next(iter(codes(o["code"]))): o for o in observations}
    # Patient- and ORC-level OBX (before the OBR) have no order to key them on.
    assert set(by_code) == {"625-4", "1063-7", "8867-4"}
    assert by_code["625-4"]["valueCodeableConcept"]["coding"][0]["code"] == "27268008"
    assert by_code["625-4"]["status"] == "preliminary"
    assert by_code["8867-4"]["valueQuantity"]["value"] == 27
    assert by_code["8867-4"]["status"] == "registered"
    assert by_code["1063-7"]["dataAbsentReason"]["coding"][0]["code"] == "unsupported"
    theirs = {
        next(iter(codes(o["code"]))): o
        for o in resources(expected(f"{MS}ORU-R01-01.expected.json"), "Observation")
    }
    assert by_code["625-4"]["status"] == theirs["625-4"]["status"]
    assert codes(by_code["625-4"]["valueCodeableConcept"]) == codes(
        theirs["625-4"]["valueCodeableConcept"]
    )
    assert by_code["625-4"]["valueCodeableConcept"]["text"] == "Salmonella species"


def test_rde_matches_fhir_converter_filler_order() -> None:
    bundle = converted(f"public/{MS}RDE-O11-01.hl7").bundle
    ours = one(bundle, "MedicationRequest")
    theirs = expected(f"{MS}RDE-O11-01.expected.json")
    filler = next(
        r for r in resources(theirs, "MedicationRequest") if r["intent"] == "filler-order"
    )
    medication_codes = set().union(*(codes(m["code"]) for m in resources(theirs, "Medication")))
    assert codes(ours["medicationCodeableConcept"]) <= medication_codes
    assert codes(ours["medicationCodeableConcept"]) == {"0143963401"}
    assert {"1163422591"} <= _values(ours) & _values(filler)
    assert same_instant(ours["authoredOn"], filler["authoredOn"])
    ours_dose = ours["dosageInstruction"][0]["doseAndRate"][0]
    their_dose = filler["dosageInstruction"][0]["doseAndRate"][0]
    assert ours_dose["doseQuantity"] == their_dose["doseQuantity"]
    assert ours_dose["rateQuantity"] == their_dose["rateQuantity"]
    assert codes(ours["dosageInstruction"][0]["route"]) == {"IV"}
    dispense = ours["dispenseRequest"]
    assert dispense["numberOfRepeatsAllowed"] == filler["dispenseRequest"]["numberOfRepeatsAllowed"]
    assert dispense["quantity"] == filler["dispenseRequest"]["quantity"]
    assert ours["status"] == filler["status"] == "active"


@pytest.mark.parametrize("name", [f"{MS}ADT-A40-01.hl7", f"{MS}ADT-A40-01__LF-raw.hl7"])
def test_public_a40_merge(name: str) -> None:
    bundle = converted(f"public/{name}").bundle
    survivor, retired = resources(bundle, "Patient")
    assert _values(survivor) == {"12345"}  # PID-18 (account number) is not a patient id
    assert survivor["active"] is True
    assert _values(retired) == {"56789"}
    assert retired["active"] is False
    survivor_entry = next(e for e in bundle["entry"] if e["resource"] is survivor)
    assert retired["link"] == [
        {"other": {"reference": survivor_entry["fullUrl"]}, "type": "replaced-by"}
    ]


def test_hapi_adt_a01() -> None:
    bundle = converted("public/hapifhir-hapi-hl7v2__src-docs-examples-ADT_A01.txt.hl7").bundle
    patient = one(bundle, "Patient")
    # XPN.5 prefix and XPN.6 degree are both "MR." in this sample; the degree is a suffix.
    assert patient["name"] == [
        {"family": "Duck", "given": ["Donald"], "prefix": ["MR."], "suffix": ["MR."]}
    ]
    assert patient["birthDate"] == "1972-02-27"
    assert [a.get("use") for a in patient["address"]] == ["home", None]
    assert patient["address"][1]["type"] == "postal"
    assert patient["address"][0]["city"] == "TORONTO"
    assert patient["telecom"][0] == {"system": "phone", "value": "(416)111-1111", "use": "home"}


def test_cerner_adt_explicit_nulls_and_repetitions() -> None:
    bundle = converted("public/johnpaulett-python-hl7__tests-samples.py_sample_msh.hl7").bundle
    patient = one(bundle, "Patient")
    assert _values(patient) >= {"2148790", "162840", "3722", "184737", "Q2147670"}
    assert [n["family"] for n in patient["name"]] == ["RUFUSS"]
    assert patient["gender"] == "female"
    entry = next(e for e in bundle["entry"] if e["resource"] is patient)
    assert entry["request"]["url"] == "Patient?identifier=urn:medicore:hl7:id:MSH_MRN|2148790"


def test_public_batch() -> None:
    messages = split_batch(raw("public/johnpaulett-python-hl7__tests-samples.py_sample_batch.hl7"))
    assert len(messages) == 1
    result = convert(messages[0])
    validate_bundle(result.bundle)
    assert result.header.control_id == "12334456778890"
    assert result.header.charset == "ASCII"
    patient = one(result.bundle, "Patient")
    assert _values(patient) == {"0000112234"}
    assert patient["birthDate"] == "1013-11-13"


@pytest.mark.parametrize(
    ("name", "ack_code", "error_code", "location"),
    [
        ("hapifhir-hapi-hl7v2__cv.04_001_chem.hl7", "AR", "200", "MSH^1^9"),
        (f"{MS}MDHHS-OML-O21-2.hl7", "AR", "200", "MSH^1^9"),
        ("hapifhir-hapi-hl7v2__util-messages.txt_ORU_R01_1994.hl7", "AR", "102", "MSH^1^7"),
        ("johnpaulett-python-hl7__tests-samples.py_sample_hl7.hl7", "AE", "102", "PID^1^7"),
        ("johnpaulett-python-hl7__tests-samples.py_rep_sample_hl7.hl7", "AE", "100", "OBX"),
    ],
)
def test_public_bad_messages(name: str, ack_code: str, error_code: str, location: str) -> None:
    with pytest.raises(ConversionError) as info:
        convert(raw(f"public/{name}"))
    error = info.value
    assert (error.ack_code, error.error_code, error.location) == (ack_code, error_code, location)
    assert error.header is not None
    assert error.header.control_id
