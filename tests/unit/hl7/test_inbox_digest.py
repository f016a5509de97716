"""What counts as "the same message" for a replay: MSH-7 and segment ends aside, every byte."""

from __future__ import annotations

import pytest

from fhir_server.hl7.inbox import content_digest, reused_key

MESSAGE = (
    b"MSH|^~\\&|MEDILAB|SGH|MEDICORE|MEDICORE|20240305101500+0900||ORU^R01|LAB1|P|2.5.1\r"
    b"PID|1||MRN-1^^^SGH^MR||Kim^Minjun||19880101|M\r"
    b"OBX|1|NM|2345-7^Glucose^LN||105|mg/dL|70-99|H|||F\r"
)


@pytest.mark.parametrize(
    ("resend", "why"),
    [
        (MESSAGE, "byte for byte"),
        (MESSAGE.replace(b"20240305101500+0900", b"20240305102000+0900", 1), "MSH-7 restamped"),
        (MESSAGE.replace(b"\r", b"\r\n"), "CRLF segment ends (an HTTP client)"),
        (MESSAGE.replace(b"\r", b"\n"), "LF segment ends"),
        (b"\x0b" + MESSAGE + b"\x1c\r", "MLLP framing left on"),
    ],
)
def test_a_resend_has_the_same_digest(resend: bytes, why: str) -> None:
    assert content_digest(resend) == content_digest(MESSAGE), why


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (MESSAGE.replace(b"|105|", b"|98|"), "another result value"),
        (MESSAGE.replace(b"MRN-1", b"MRN-2"), "another patient"),
        (MESSAGE.replace(b"ORU^R01", b"ORU^R30"), "another message type in MSH-9"),
        (MESSAGE.replace(b"|P|2.5.1", b"|T|2.5.1"), "another processing id in MSH-11"),
        (MESSAGE + b"NTE|1||note\r", "one more segment"),
    ],
)
def test_other_content_has_another_digest(other: bytes, why: str) -> None:
    assert content_digest(other) != content_digest(MESSAGE), why


def test_a_message_without_msh7_or_msh_still_digests() -> None:
    assert content_digest(b"MSH|^~\\&|A") != content_digest(b"MSH|^~\\&|B")
    assert content_digest(b"not hl7") != content_digest(b"not hl7 either")


def test_the_reuse_key_keeps_the_original_key_in_front() -> None:
    digest = content_digest(MESSAGE)
    assert reused_key("MEDILAB|SGH|LAB1", digest) == f"MEDILAB|SGH|LAB1|{digest[:16]}"
