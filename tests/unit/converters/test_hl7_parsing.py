"""What real senders send: charsets, separators, BOMs, escapes, delimiters, Z-segments, batches."""

from __future__ import annotations

import pytest

from converters import ConversionError, convert, decode_message, read_header, split_batch

from .support import converted, one, raw, validate_bundle

A01 = raw("own/adt_a01.hl7")


def test_euc_kr_declared_in_msh18() -> None:
    data = raw("own/euc_kr.hl7")
    assert "홍".encode("euc-kr") in data and "홍".encode() not in data
    result = converted("own/euc_kr.hl7")
    assert result.header.charset == "KS X 1001"
    assert one(result.bundle, "Patient")["name"] == [{"family": "홍", "given": ["길동"]}]
    assert "홍^길동" in result.text


def test_euc_kr_with_sender_default_charset() -> None:
    result = converted("own/euc_kr_no_msh18.hl7", default_charset="KS X 1001")
    assert result.header.charset is None
    assert one(result.bundle, "Patient")["name"] == [{"family": "이", "given": ["순신"]}]


def test_euc_kr_without_any_charset_is_rejected() -> None:
    with pytest.raises(ConversionError) as info:
        convert(raw("own/euc_kr_no_msh18.hl7"))
    assert (info.value.ack_code, info.value.error_code) == ("AR", "102")
    assert info.value.location == "MSH^1^18"
    assert info.value.header is not None and info.value.header.control_id == "KR0002"


def test_hex_escape_uses_message_charset() -> None:
    text = raw("own/euc_kr.hl7").replace("홍".encode("euc-kr"), b"\\XC8AB\\")
    patient = one(convert(text).bundle, "Patient")
    assert patient["name"][0]["family"] == "홍"


def test_hex_escape_uses_the_first_msh18_repetition() -> None:
    # MSH-18 repeats (a second charset for the rest of the message); the first one decodes.
    text = raw("own/euc_kr.hl7").replace("홍".encode("euc-kr"), b"\\XC8AB\\")
    text = text.replace(b"|KS X 1001", b"|KS X 1001~UNICODE UTF-8", 1)
    patient = one(convert(text).bundle, "Patient")
    assert patient["name"][0]["family"] == "홍"


def test_latin1_and_ascii() -> None:
    latin = converted("own/latin1.hl7")
    assert one(latin.bundle, "Patient")["name"] == [{"family": "Müller", "given": ["Jürgen"]}]
    ascii_ = converted("own/ascii.hl7")
    assert one(ascii_.bundle, "Patient")["name"] == [{"family": "Smith", "given": ["John"]}]


def test_ascii_declared_but_not_ascii() -> None:
    data = raw("own/latin1.hl7").replace(b"8859/1", b"ASCII")
    with pytest.raises(ConversionError) as info:
        convert(data)
    assert (info.value.ack_code, info.value.error_code) == ("AR", "102")


def test_unknown_charset() -> None:
    data = raw("own/ascii.hl7").replace(b"|ASCII", b"|EBCDIC-XYZ")
    with pytest.raises(ConversionError) as info:
        convert(data)
    assert (info.value.ack_code, info.value.error_code, info.value.location) == (
        "AR",
        "103",
        "MSH^1^18",
    )


def test_utf8_bom_without_msh18() -> None:
    text = "MSH|^~\\&|A|B|C|D|20240101120000+0900||ADT^A28|BOM1|P|2.5\rPID|1||X1^^^H^MR||김^민지\r"
    result = convert(b"\xef\xbb\xbf" + text.encode())
    assert one(result.bundle, "Patient")["name"] == [{"family": "김", "given": ["민지"]}]
    assert result.text.startswith("MSH|")


@pytest.mark.parametrize("separator", [b"\r", b"\n", b"\r\n"])
def test_segment_separators(separator: bytes) -> None:
    lines = A01.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    data = separator.join(lines) + separator
    expected = convert(A01.replace(b"\n", b"\r"))
    result = convert(data)
    assert result.bundle == expected.bundle
    assert result.text == expected.text
    assert result.text.count("\r") == 5 and "\n" not in result.text


def test_decode_message_normalises_to_cr() -> None:
    assert decode_message(b"MSH|^~\\&|A\r\nPID|1\n\nPV1|1\r") == "MSH|^~\\&|A\rPID|1\rPV1|1"


def test_escape_sequences() -> None:
    patient = one(converted("own/escapes.hl7").bundle, "Patient")
    assert patient["name"] == [{"family": "O|Brien^Jr&Sr~X\\Y", "given": ["AnnMarie"]}]
    assert patient["address"] == [{"line": ["Line\nTwo"], "city": "Busan"}]


def test_non_default_delimiters() -> None:
    result = converted("own/delimiters.hl7")
    patient = one(result.bundle, "Patient")
    assert patient["name"] == [{"family": "Park", "given": ["Jisoo"]}, {"family": "Jiji"}]
    assert patient["address"] == [{"line": ["1 Main St Unit 2"], "city": "Incheon"}]
    assert patient["identifier"][0]["value"] == "MC-4004"
    assert result.header.message_type == "ADT^A28"
    assert result.header.control_id == "DELIM001"


def test_z_segments_are_kept_in_text_and_ignored() -> None:
    without = A01.replace(b"\r", b"\n").split(b"\n")
    plain = b"\r".join(line for line in without if not line.startswith(b"ZPI"))
    with_z = convert(A01)
    assert "ZPI|custom" in with_z.text
    assert with_z.bundle == convert(plain).bundle


def test_read_header() -> None:
    header = read_header(raw("public/microsoft-FHIR-Converter__ADT-A01-01.hl7"))
    assert header.sending_application == "ADTApp"
    assert header.sending_facility == "GHHSFacility^2.16.840.1.122848.1.30^ISO"
    assert header.receiving_application == "EHRApp^1.Edu^ISO"
    assert header.receiving_facility == "GHHRFacility^2.16.840.1.1122848.1.32^ISO"
    assert header.control_id == "MSG00001"
    assert header.message_type == "ADT^A01"
    assert header.version == "2.8"
    assert header.processing_id == "P"
    assert header.charset is None


def test_batch_split_and_convert() -> None:
    messages = split_batch(raw("own/batch.hl7"))
    assert [m[:3] for m in messages] == [b"MSH", b"MSH"]
    results = [convert(m) for m in messages]
    for result in results:
        validate_bundle(result.bundle)
    assert [r.header.control_id for r in results] == ["BAT0001", "BAT0002"]
    assert [one(r.bundle, "Patient")["identifier"][0]["value"] for r in results] == [
        "MC-8001",
        "MC-8002",
    ]


def test_batch_of_mixed_charsets() -> None:
    data = b"BHS|^~\\&|X\r" + raw("own/euc_kr.hl7") + raw("own/latin1.hl7") + b"BTS|2\r"
    korean, german = (convert(m) for m in split_batch(data))
    assert one(korean.bundle, "Patient")["name"][0]["family"] == "홍"
    assert one(german.bundle, "Patient")["name"][0]["family"] == "Müller"


def test_batch_with_segment_before_msh() -> None:
    with pytest.raises(ConversionError) as info:
        split_batch(b"BHS|^~\\&\rPID|1||X\rMSH|^~\\&|A\r")
    assert (info.value.ack_code, info.value.error_code) == ("AR", "100")
