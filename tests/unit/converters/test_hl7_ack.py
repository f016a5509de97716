"""ACK building: MSA echoes MSH-10, sender and receiver swap, ERR carries table 0357."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import hl7
import pytest

from converters import ConversionError, build_ack, convert, read_header

from .support import raw

KST = timezone(timedelta(hours=9))
WHEN = datetime(2024, 3, 5, 8, 30, 1, tzinfo=KST)


def test_aa() -> None:
    header = read_header(raw("own/adt_a01.hl7"))
    ack = build_ack(header, code="AA", control_id="ACK0001", timestamp=WHEN)
    assert ack == (
        "MSH|^~\\&|MEDICORE|MEDICORE|MEDIADT|SEOULGH^2.16.840.1.113883.3.9999^ISO|"
        "20240305083001+0900||ACK^A01^ACK|ACK0001|P|2.5.1\r"
        "MSA|AA|ADT0001\r"
    )


def _error(name: str, old: bytes, new: bytes) -> ConversionError:
    with pytest.raises(ConversionError) as info:
        convert(raw(name).replace(old, new))
    return info.value


def test_ae_with_err_segment() -> None:
    error = _error("own/adt_a28.hl7", b"19920704", b"19921304")
    ack = build_ack(error.header, code="AE", error=error, control_id="ACK0002", timestamp=WHEN)
    assert ack.split("\r") == [
        "MSH|^~\\&|MEDICORE|MEDICORE|MEDIADT|SEOULGH^2.16.840.1.113883.3.9999^ISO|"
        "20240305083001+0900||ACK^A28^ACK|ACK0002|P|2.5.1",
        "MSA|AE|ADT0028|date/time out of range",
        "ERR||PID^1^7|102^Data type error^HL70357|E||||date/time out of range",
        "",
    ]
    parsed = hl7.parse(ack)
    assert str(parsed.segment("MSA")[2]) == "ADT0028"
    assert str(parsed.segment("ERR")[3][0][0]) == "102"


def test_pre_25_uses_err_1() -> None:
    error = _error("own/orm_o01.hl7", b"ORD-902^MEDIORD", b"")
    assert error.header is not None and error.header.version == "2.3.1"
    ack = build_ack(error.header, code="AE", error=error, control_id="A3", timestamp=WHEN)
    assert ack.split("\r")[2] == "ERR|ORC^1^2^101&Required field missing&HL70357"


def test_ar_without_header() -> None:
    with pytest.raises(ConversionError) as info:
        convert(b"not hl7 at all")
    ack = build_ack(info.value.header, code="AR", error=info.value, control_id="C9", timestamp=WHEN)
    assert ack.split("\r") == [
        "MSH|^~\\&|||||20240305083001+0900||ACK|C9|P|2.5",
        "MSA|AR||message does not start with an MSH segment",
        "ERR||MSH|100^Segment sequence error^HL70357|E||||"
        "message does not start with an MSH segment",
        "",
    ]


def test_text_is_escaped() -> None:
    header = read_header(raw("own/adt_a28.hl7"))
    error = ConversionError("a|b^c~d&e\\f", error_code="207", location="PID^1^3")
    ack = build_ack(header, code="AE", error=error, control_id="C1", timestamp=WHEN)
    assert "MSA|AE|ADT0028|a\\F\\b\\S\\c\\R\\d\\T\\e\\E\\f\r" in ack
    assert len(hl7.parse(ack).segment("ERR")) == 9


def test_header_of_non_default_delimiters_is_re_expressed() -> None:
    header = read_header(raw("own/delimiters.hl7"))
    ack = build_ack(header, code="AA", control_id="C2", timestamp=WHEN)
    assert ack.startswith("MSH|^~\\&|MEDICORE|MEDICORE|MEDIADT|SEOULGH|")
    assert "MSA|AA|DELIM001\r" in ack


def test_rejects_unknown_code() -> None:
    with pytest.raises(ValueError):
        build_ack(None, code="OK", control_id="C3", timestamp=WHEN)
