"""Hypothesis strategies for HL7 v2 messages: well-formed skeletons with hostile contents.

Messages are built as text, then encoded in the charset MSH-18 names (or, on purpose, in
another one), so the fuzzers reach the mappers rather than stopping at the MSH check.
Family names carry the PHI marker so the tests can check that no error or log echoes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

PHI_MARKER = "ZZPHI123"
#: Control ids unlikely to repeat (``st.uuids`` draws true randomness, not derandomized).
unique_ids = st.integers(0, 2**60).map(lambda n: f"F{n:x}")

# MSH-18 value -> the codec the message is then written in.
CHARSETS = {
    "": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "KS X 1001": "euc-kr",
    "ASCII": "ascii",
    "GB 18030-2000": "gb18030",
    "BOGUS-CHARSET": "utf-8",
    "base64": "utf-8",  # a codec name that is not a charset
}
ESCAPES = [
    "\\F\\", "\\S\\", "\\T\\", "\\R\\", "\\E\\", "\\H\\", "\\N\\", "\\.br\\", "\\X41\\",
    "\\X0D0A\\", "\\XZZ\\", "\\X\\", "\\Z99\\", "\\Zxx\\", "\\C2842\\", "\\M2442\\", "\\",
    "\\\\", "\\F", "\\.sp5\\", "\\.in+4\\",
]  # fmt: skip
MESSAGE_TYPES = [
    "ADT^A01^ADT_A01", "ADT^A04^ADT_A01", "ADT^A08^ADT_A01", "ADT^A03^ADT_A03",
    "ADT^A40^ADT_A39", "ADT^A99", "ORU^R01^ORU_R01", "ORU^R30", "ORM^O01^ORM_O01",
    "RDE^O11^RDE_O11", "OMP^O09^OMP_O09", "ZZZ^Z01", "", "^",
]  # fmt: skip
VERSIONS = ["2.5.1", "2.3", "2.8", "3.0", "", "2.5.1.9"]
VALUE_TYPES = ["NM", "ST", "TX", "CWE", "CE", "SN", "DT", "TS", "DTM", "NA", "ED", "", "ZZ"]
TIMES = [
    "20240305083000+0900", "20240305", "2024", "202403051015", "20241399999999", "0",
    "20240230", "19000101000000.0000-1200", "99999999999999+9999", "abc", "",
    "20240305083000.123456789+0900", "20240305083000Z",
]  # fmt: skip


def mostly(good: Any, bad: Sequence[Any], weight: int = 4) -> st.SearchStrategy[Any]:
    """``good`` about ``weight`` times in ``weight + 1``, else one of ``bad``."""
    return st.one_of(*([st.just(good)] * weight), st.sampled_from(bad))


_text_chars = st.characters(
    codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x0b\x1c\r\n"
)


def _piece() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(_text_chars, max_size=12),
        st.sampled_from(ESCAPES),
        st.sampled_from(["^", "&", "~", "|", '""', "-1", "1e309", "9" * 40, "홍길동", "Müller"]),
    )


#: One field's text: fragments, escape sequences and delimiters run together.
field_text = st.lists(_piece(), max_size=5).map("".join)


@st.composite
def segments(draw: st.DrawFn, hostile: bool) -> list[str]:
    """The segments after MSH: PID (with the PHI marker), PV1, ORC/OBR/OBX/RXE, junk."""
    mrn = draw(st.one_of(st.just("MRN-1"), st.just("MRN-2"), field_text))
    family = PHI_MARKER + draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=4))
    out = [
        f"EVN|A01|{draw(mostly(TIMES[0], TIMES, 2))}",
        f"PID|1||{mrn}^^^SGH&2.16.840.1.113883.3.9999&ISO^MR||{family}^{draw(field_text)}"
        f"||{draw(mostly('19880101', TIMES, 2))}|{draw(st.sampled_from(['M', 'F', 'U', 'X', '']))}"
        f"|||{draw(field_text)}^^{draw(field_text)}",
        f"PV1|1|{draw(st.sampled_from(['I', 'O', 'E', '', 'Q']))}|{draw(field_text)}^101"
        f"||||{draw(field_text)}^Lee^Jiwoo|||||||||||V-{draw(field_text)}",
        f"ORC|{draw(st.sampled_from(['NW', 'RE', 'CA', 'DC', 'XO', '']))}|P-1^ORD|F-1^LAB",
        f"OBR|1|P-1^ORD|F-1^LAB|{draw(field_text)}^Panel^LN|||{draw(mostly(TIMES[0], TIMES, 2))}",
    ]
    for n in range(1, draw(st.integers(0, 3)) + 1):
        vtype = draw(st.sampled_from(VALUE_TYPES[:3]) | st.sampled_from(VALUE_TYPES))
        value = mostly("105", [""], 1) | field_text
        out.append(
            f"OBX|{n}|{vtype}|{draw(field_text)}^Glucose^LN||{draw(value)}"
            f"|{draw(field_text)}^^UCUM|{draw(field_text)}|{draw(field_text)}|||"
            f"{draw(st.sampled_from(['F', 'P', 'C', 'X', '']))}"
        )
    if draw(st.booleans()):
        out.append(f"RXE|^^^{draw(st.sampled_from(TIMES))}|{draw(field_text)}^Amoxicillin^RX")
    junk = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=0, max_size=4)
    for _ in range(draw(st.integers(0, 2)) if hostile else 0):
        out.insert(
            draw(st.integers(0, len(out))), f"{draw(junk)}|{draw(field_text)}|{draw(field_text)}"
        )
    # Drop some segments: messages missing what their type requires.
    kept = [draw(mostly(True, [False])) if hostile else True for _ in out]
    return [s for s, keep in zip(out, kept, strict=True) if keep or s.startswith("PID")]


@st.composite
def hl7_messages(draw: st.DrawFn, *, control_ids: st.SearchStrategy[str] | None = None) -> bytes:
    """One message as bytes, encoded per MSH-18 (sometimes deliberately not).

    About half are ``hostile`` (wrong charset, flipped bytes, junk or missing segments,
    bad MSH values); the rest have a sound skeleton, so the mappers see the fuzzed values.
    """
    hostile = draw(st.booleans())
    sound = [c for c in sorted(CHARSETS) if c not in ("BOGUS-CHARSET", "base64")]
    charset = draw(st.sampled_from(sorted(CHARSETS) if hostile else sound))
    control = draw(
        control_ids
        if control_ids is not None
        else st.text("ABC0123456789", min_size=0 if hostile else 1, max_size=8)
    )
    msh = (
        f"MSH|^~\\&|{draw(field_text) if hostile else 'FUZZ'}|SGH|MEDICORE|MEDICORE|"
        f"{draw(st.sampled_from(TIMES)) if hostile else TIMES[0]}||"
        f"{draw(st.sampled_from(MESSAGE_TYPES if hostile else MESSAGE_TYPES[:11]))}|{control}|"
        f"{draw(st.sampled_from(['P', 'T', 'D', ''])) if hostile else 'P'}|"
        f"{draw(st.sampled_from(VERSIONS)) if hostile else '2.5.1'}"
        f"|||AL|NE||{charset}"
    )
    separator = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    text = separator.join([msh, *draw(segments(hostile))]) + separator
    codec = draw(st.sampled_from(["utf-8", "latin-1"])) if hostile else CHARSETS[charset]
    raw = text.encode(codec, errors="replace")
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw if draw(st.booleans()) else raw
    # A few raw byte flips, as line noise would make them (never MLLP control bytes).
    for _ in range(draw(st.integers(0, 2)) if hostile else 0):
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        byte = draw(st.integers(0, 255).filter(lambda b: b not in (0x0B, 0x1C)))
        raw = raw[:at] + bytes([byte]) + raw[at + 1 :]
    return raw
