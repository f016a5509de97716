"""Bad input: each gets the ConversionError (ack code, table 0357 code, ERL) an ACK needs."""

from __future__ import annotations

import pytest

from converters import ConversionError, convert

MSH = "MSH|^~\\&|LAB|SGH|MEDICORE|MEDICORE|20240305101500+0900||{type}|BAD1|P|{version}"
PID = "PID|1||MC-1001^^^SGH^MR||Kim^Minjun||19880101|M"
OBR = "OBR|1|PL-1^ORD|FL-1^LAB|24323-8^Panel^LN"


def message(*segments: str, type_: str = "ORU^R01", version: str = "2.5.1") -> bytes:
    return "\r".join([MSH.format(type=type_, version=version), *segments]).encode() + b"\r"


def error_of(data: bytes) -> ConversionError:
    with pytest.raises(ConversionError) as info:
        convert(data)
    return info.value


@pytest.mark.parametrize(
    ("data", "ack", "code", "location"),
    [
        (b"", "AR", "100", "MSH"),
        (b"hello world, not hl7", "AR", "100", "MSH"),
        (b"PID|1||X\rMSH|^~\\&|A", "AR", "100", "MSH"),
        (b"MSHA^~\\&|A|B", "AR", "102", "MSH^1^1"),
        (message(PID, type_=""), "AR", "101", "MSH^1^9"),
        (message(PID).replace(b"|BAD1|", b"||"), "AR", "101", "MSH^1^10"),
        (message(PID, version=""), "AR", "101", "MSH^1^12"),
        (message(PID, version="3.0"), "AR", "203", "MSH^1^12"),
        (message(PID, type_="SIU^S12"), "AR", "200", "MSH^1^9"),
        (message(PID, type_="ADT^A99"), "AR", "201", "MSH^1^9^1^2"),
        (message(PID, type_="ORU^R30"), "AR", "201", "MSH^1^9^1^2"),
        (message(PID).replace(b"20240305101500+0900", b"2024-03-05"), "AR", "102", "MSH^1^7"),
        (message(PID).replace(b"20240305101500+0900", b""), "AR", "101", "MSH^1^7"),
        (message(PID, "pv1|1"), "AR", "100", "segment 3"),
        (message("EVN|A01", type_="ADT^A01"), "AE", "100", "PID"),
        (message("PID|1||", type_="ADT^A01"), "AE", "101", "PID^1^3"),
        (message(PID.replace("19880101", "19881301"), type_="ADT^A01"), "AE", "102", "PID^1^7"),
        (message(PID, type_="ADT^A40"), "AE", "100", "MRG"),
        (message(PID, "MRG|MC-1001^^^SGH^MR", type_="ADT^A40"), "AE", "205", "MRG^1^1"),
        (message(PID, "MRG|", type_="ADT^A40"), "AE", "101", "MRG^1^1"),
        (message(PID, OBR), "AE", "100", "OBX"),
        (message(OBR, "OBX|1|NM|1-1^X^LN||5||||||F"), "AE", "100", "PID"),
        (message(PID, OBR, "OBX|1|NM|1-1^X^LN||five||||||F"), "AE", "102", "OBX^1^5"),
        (message(PID, OBR, "OBX|1|NM|1-1^X^LN||5"), "AE", "101", "OBX^1^11"),
        (message(PID, OBR, "OBX|1|NM|1-1^X^LN||5||||||Q"), "AE", "103", "OBX^1^11"),
        (message(PID, OBR, "OBX|1|NM|||5||||||F"), "AE", "101", "OBX^1^3"),
        (message(PID, OBR, "OBX|1|SN|1-1^X^LN||=>^5||||||F"), "AE", "102", "OBX^1^5"),
        (message(PID, "OBR|1|||X^Y^LN", "OBX|1|ST|1-1^X^LN||a||||||F"), "AE", "101", "OBR^1^3"),
        (message(PID, "OBX|1|ST|1-1^X^LN||a||||||F", OBR), "AE", "100", "OBX"),
        (message(PID, type_="RDE^O11"), "AE", "100", "ORC"),
        (message(PID, "ORC|NW", "RXE||1^A^RXNORM", type_="RDE^O11"), "AE", "101", "ORC^1^2"),
        (message(PID, "ORC||P1", "RXE||1^A^RXNORM", type_="RDE^O11"), "AE", "101", "ORC^1^1"),
        (message(PID, "ORC|NW|P1", "RXE||", type_="RDE^O11"), "AE", "101", "RXE^1^2"),
        (message(PID, "ORC|NW|P1", "RXE|||x||mg", type_="RDE^O11"), "AE", "101", "RXE^1^2"),
        (
            message(PID, "ORC|NW|P1", "RXE||1^A^RXNORM|five", type_="RDE^O11"),
            "AE",
            "102",
            "RXE^1^3",
        ),
        (message(PID, "ORC|NW|P1", OBR, type_="ORM^O01"), "AE", "100", "ORC^1"),
    ],
)
def test_bad_input(data: bytes, ack: str, code: str, location: str) -> None:
    error = error_of(data)
    assert (error.ack_code, error.error_code, error.location) == (ack, code, location)


def test_errors_carry_the_header_for_the_ack() -> None:
    error = error_of(message(PID.replace("19880101", "19881301"), type_="ADT^A01"))
    assert error.header is not None
    assert error.header.control_id == "BAD1"
    assert error.header.sending_application == "LAB"
    assert error.expression == "PID^1^7"


def test_error_messages_contain_no_patient_data() -> None:
    error = error_of(message(PID.replace("19880101", "19881301"), type_="ADT^A01"))
    for phi in ("Kim", "Minjun", "MC-1001", "19881301"):
        assert phi not in str(error)
        assert phi not in repr(error)


def test_unreadable_message_has_no_header() -> None:
    assert error_of(b"garbage").header is None


def test_mapping_bug_becomes_ae_207(monkeypatch: pytest.MonkeyPatch) -> None:
    import converters._convert as module

    def broken(ctx: object) -> None:
        raise KeyError("Kim")

    monkeypatch.setattr(module, "convert_adt", broken)
    error = error_of(message(PID, type_="ADT^A01"))
    assert (error.ack_code, error.error_code) == ("AE", "207")
    assert error.header is not None and error.header.control_id == "BAD1"
    assert "Kim" not in str(error)
