"""ADT events on our own messages: Patient demographics, Encounter lifecycle, A40 merge."""

from __future__ import annotations

import pytest

from converters import convert

from .support import codes, converted, entries, one, raw, resources

SGH = "urn:oid:2.16.840.1.113883.3.9999"
PATIENT_URL = f"Patient?identifier={SGH}|MC-1001"
VISIT_URL = f"Encounter?identifier={SGH}|V-5001"


def test_a01_patient_demographics() -> None:
    bundle = converted("own/adt_a01.hl7").bundle
    (entry,) = entries(bundle, "Patient")
    assert entry["request"] == {"method": "PUT", "url": PATIENT_URL}
    patient = entry["resource"]
    assert patient["identifier"][0] == {
        "value": "MC-1001",
        "system": SGH,
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
        },
    }
    assert patient["identifier"][1]["system"] == "urn:medicore:hl7:id:KRMOIS"
    assert patient["name"] == [
        {"family": "Kim", "given": ["Minjun", "J"], "prefix": ["Mr."], "use": "official"},
        {"family": "Kimmy", "use": "nickname"},
    ]
    assert patient["birthDate"] == "1988-01-01"
    assert patient["gender"] == "male"
    assert patient["address"] == [
        {
            "line": ["12 Sejong-daero", "Apt 301"],
            "city": "Seoul",
            "postalCode": "04524",
            "country": "KOR",
            "use": "home",
        }
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "02-555-0101", "use": "home"},
        {"system": "phone", "value": "010-5550-0101", "use": "mobile"},
        {"system": "email", "value": "minjun@example.org", "use": "home"},
        {"system": "phone", "value": "02-555-0202", "use": "work"},
    ]
    assert codes(patient["maritalStatus"]) == {"M"}
    assert patient["maritalStatus"]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    )
    assert codes(patient["communication"][0]["language"]) == {"kor"}
    assert patient["deceasedBoolean"] is False
    assert patient["active"] is True


def test_a01_encounter() -> None:
    bundle = converted("own/adt_a01.hl7").bundle
    (entry,) = entries(bundle, "Encounter")
    assert entry["request"] == {"method": "PUT", "url": VISIT_URL}
    enc = entry["resource"]
    patient_entry = entries(bundle, "Patient")[0]
    assert enc["subject"] == {"reference": patient_entry["fullUrl"]}
    assert patient_entry["fullUrl"].startswith("urn:uuid:")
    assert enc["status"] == "in-progress"
    assert enc["class"]["code"] == "IMP"
    assert enc["period"] == {"start": "2024-03-05T08:20:00+09:00"}
    assert enc["location"] == [
        {
            "location": {
                "type": "Location",
                "display": "point of care W3, room 301, bed B, facility SGH",
            },
            "status": "active",
        }
    ]
    roles = [(p["type"][0]["coding"][0]["code"], p["individual"]) for p in enc["participant"]]
    assert roles == [
        (
            "ATND",
            {
                "type": "Practitioner",
                "identifier": {"value": "D100", "system": SGH},
                "display": "Dr. Jiwoo Lee",
            },
        ),
        (
            "REF",
            {
                "type": "Practitioner",
                "identifier": {"value": "D200", "system": SGH},
                "display": "Hana Park",
            },
        ),
    ]
    assert codes(enc["reasonCode"][0]) == {"I10"}


@pytest.mark.parametrize(
    ("name", "status", "klass", "end"),
    [
        ("adt_a02", "in-progress", "IMP", None),
        ("adt_a03", "finished", "IMP", "2024-03-10T11:00:00+09:00"),
        ("adt_a04", "arrived", "AMB", None),
        ("adt_a05", "planned", "PRENC", None),
        ("adt_a11", "cancelled", "IMP", None),
        ("adt_a13", "in-progress", "IMP", None),
    ],
)
def test_visit_events(name: str, status: str, klass: str, end: str | None) -> None:
    enc = one(converted(f"own/{name}.hl7").bundle, "Encounter")
    assert enc["status"] == status
    assert enc["class"]["code"] == klass
    assert enc["period"].get("end") == end
    assert enc["period"]["start"] == "2024-03-05T08:20:00+09:00"


def test_a02_transfer_records_prior_location() -> None:
    enc = one(converted("own/adt_a02.hl7").bundle, "Encounter")
    assert [(loc["status"], loc["location"]["display"]) for loc in enc["location"]] == [
        ("active", "point of care ICU, room 5, bed A, facility SGH"),
        ("completed", "point of care W3, room 301, bed B, facility SGH"),
    ]


def test_a04_a05_have_their_own_visits() -> None:
    urls = {
        name: entries(converted(f"own/{name}.hl7").bundle, "Encounter")[0]["request"]["url"]
        for name in ("adt_a04", "adt_a05")
    }
    assert urls == {
        "adt_a04": f"Encounter?identifier={SGH}|V-6001",
        "adt_a05": f"Encounter?identifier={SGH}|V-7001",
    }


def test_a08_update_targets_same_resources_and_drops_nulls() -> None:
    a01 = converted("own/adt_a01.hl7").bundle
    a08 = converted("own/adt_a08.hl7").bundle
    assert [e["fullUrl"] for e in entries(a08, "Patient")] == [
        e["fullUrl"] for e in entries(a01, "Patient")
    ]
    assert [e["request"]["url"] for e in entries(a08, "Encounter")] == [VISIT_URL]
    patient = one(a08, "Patient")
    assert "gender" not in patient  # PID-8 was "" (explicit null)
    assert "telecom" not in patient  # PID-13 was ""
    assert patient["address"][0]["line"] == ["77 Teheran-ro"]


@pytest.mark.parametrize(("name", "street"), [("adt_a28", "5 Jong-ro"), ("adt_a31", "9 Eulji-ro")])
def test_person_events_write_patient_only(name: str, street: str) -> None:
    bundle = converted(f"own/{name}.hl7").bundle
    assert resources(bundle, "Encounter") == []
    patient = one(bundle, "Patient")
    assert patient["name"] == [{"family": "Lee", "given": ["Seoyeon"]}]
    assert patient["address"][0]["line"] == [street]
    assert entries(bundle, "Patient")[0]["request"]["url"] == f"Patient?identifier={SGH}|MC-2002"


def test_a40_merge_retires_the_old_record() -> None:
    bundle = converted("own/adt_a40.hl7").bundle
    survivor, retired = entries(bundle, "Patient")
    assert survivor["request"]["url"] == PATIENT_URL
    assert retired["request"]["url"] == f"Patient?identifier={SGH}|MC-1999"
    assert retired["resource"]["active"] is False
    assert retired["resource"]["link"] == [
        {"other": {"reference": survivor["fullUrl"]}, "type": "replaced-by"}
    ]
    assert retired["resource"]["identifier"][0]["use"] == "old"
    assert survivor["resource"]["link"] == [
        {"other": {"reference": retired["fullUrl"]}, "type": "replaces"}
    ]
    assert [i["value"] for i in survivor["resource"]["identifier"]] == ["MC-1001"]
    provenance = one(bundle, "Provenance")
    assert [t["reference"] for t in provenance["target"]] == [
        survivor["fullUrl"],
        retired["fullUrl"],
    ]


def test_replay_gives_identical_bundle() -> None:
    first = convert(raw("own/adt_a01.hl7"))
    second = convert(raw("own/adt_a01.hl7"))
    assert first.bundle == second.bundle


def test_provenance() -> None:
    result = converted("own/adt_a01.hl7", message_ref="inbox/42")
    bundle = result.bundle
    (entry,) = entries(bundle, "Provenance")
    prov = entry["resource"]
    assert entry["request"] == {"method": "PUT", "url": f"Provenance/{prov['id']}"}
    assert prov["activity"]["coding"] == [
        {
            "system": "http://hl7.org/fhir/uv/v2mappings/CodeSystem/provenance-activity-type-v2-to-fhir",
            "code": "v2-fhir-transformation",
            "display": "V2 To FHIR Transformation",
        }
    ]
    assert prov["entity"][0]["what"]["identifier"] == {
        "system": "urn:medicore:hl7v2:message",
        "value": "inbox/42",
    }
    assert prov["agent"][0]["who"]["identifier"]["value"] == "MEDIADT"
    assert prov["agent"][0]["onBehalfOf"]["identifier"]["value"] == "SEOULGH"
    assert prov["recorded"] == "2024-03-05T08:30:00+09:00"
    assert prov["occurredDateTime"] == "2024-03-05T08:29:55+09:00"
    written = [e["fullUrl"] for e in bundle["entry"] if e is not entry]
    assert [t["reference"] for t in prov["target"]] == written


def test_default_message_ref_is_sender_and_control_id() -> None:
    prov = one(converted("own/adt_a28.hl7").bundle, "Provenance")
    assert prov["entity"][0]["what"]["identifier"]["value"] == (
        "MEDIADT|SEOULGH^2.16.840.1.113883.3.9999^ISO|ADT0028"
    )
