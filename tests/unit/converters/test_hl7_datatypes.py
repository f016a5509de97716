"""Data type conversions on their own: DTM precision and zones, authorities, search tokens."""

from __future__ import annotations

import pytest

from converters import ConversionError
from converters._bundle import search_token
from converters._datatypes import authority_system, code_system, dtm, fhir_date


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2020", None, "2020"),
        ("202010", None, "2020-10"),
        ("20201012", "+09:00", "2020-10-12"),
        ("2020101213", "+09:00", "2020-10-12T13:00:00+09:00"),
        ("202010121314", "Z", "2020-10-12T13:14:00Z"),
        ("20201012131415", "+09:00", "2020-10-12T13:14:15+09:00"),
        ("20201012131415.1234-0500", "+09:00", "2020-10-12T13:14:15.1234-05:00"),
        ("202010121314+0000", None, "2020-10-12T13:14:00Z"),
        ("202010121314", None, "2020-10-12"),  # no zone known: the date is what is certain
    ],
)
def test_dtm(value: str, tz: str | None, expected: str) -> None:
    assert dtm(value, loc="X^1^1", default_tz=tz) == expected


@pytest.mark.parametrize(
    "value", ["196203520", "20201301", "20200230", "2020-10-12", "202010121314+2500"]
)
def test_bad_dtm(value: str) -> None:
    with pytest.raises(ConversionError) as info:
        dtm(value, loc="PID^1^7", default_tz=None)
    assert (info.value.ack_code, info.value.error_code, info.value.location) == (
        "AE",
        "102",
        "PID^1^7",
    )


def test_fhir_date_drops_time() -> None:
    assert fhir_date("198808181126+0215", loc="PID^1^7") == "1988-08-18"
    assert fhir_date("", loc="PID^1^7") is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("SGH", "2.16.840.1.113883.3.9999", "ISO"), "urn:oid:2.16.840.1.113883.3.9999"),
        (("2.16.840.1",), "urn:oid:2.16.840.1"),
        (("GOOD HEALTH HOSPITAL",), "urn:medicore:hl7:id:GOOD%20HEALTH%20HOSPITAL"),
        (
            ("", "A1B2C3D4-0000-4000-8000-000000000001", "UUID"),
            "urn:uuid:a1b2c3d4-0000-4000-8000-000000000001",
        ),
        (("", "https://hospital.example/ids/mrn", "URI"), "https://hospital.example/ids/mrn"),
        (("",), None),
    ],
)
def test_authority_system(args: tuple[str, ...], expected: str | None) -> None:
    assert authority_system(*args) == expected


def test_code_systems() -> None:
    assert code_system("LN") == "http://loinc.org"
    assert code_system("SCT") == "http://snomed.info/sct"
    assert code_system("HL70078") == "http://terminology.hl7.org/CodeSystem/v2-0078"
    assert code_system("99LOCAL") == "urn:medicore:hl7:cs:99LOCAL"
    assert code_system("") is None


def test_search_token_escapes_and_encodes() -> None:
    token = search_token({"system": "urn:medicore:hl7:id:A%20B", "value": "1|2,3$4 5/6"})
    assert token == "identifier=urn:medicore:hl7:id:A%2520B|1%5C%7C2%5C%2C3%5C%244%205%2F6"
