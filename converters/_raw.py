"""Byte-level work done before any parsing: charsets (MSH-18), segment separators, batches."""

from __future__ import annotations

import codecs
import re

from converters._model import ConversionError

__all__ = [
    "CHARSETS",
    "codec_for",
    "decode_message",
    "decode_with_codec",
    "is_batch",
    "raw_msh_fields",
    "split_batch",
]

_BOM = b"\xef\xbb\xbf"
_SEGMENT_BREAK = re.compile(rb"\r\n|\n\r|\r|\n")

#: HL7 table 0211 (MSH-18 alternate character sets) -> Python codec.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "KS X 1001": "euc-kr",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "ISO IR87": "iso2022-jp",
}


def codec_for(charset: str) -> str | None:
    """The Python codec for an MSH-18 value (or a plain codec name such as ``euc-kr``)."""
    name = charset.strip()
    if name.upper() in CHARSETS:
        return CHARSETS[name.upper()]
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    # Only character sets: the same registry holds bytes-to-bytes codecs (base64, hex,
    # zlib...), str-to-str ones (rot13) and text codecs that are not charsets (IDNA
    # hostnames, Python escape sequences), none of which a sender's message is written in.
    text_encoding = getattr(info, "_is_text_encoding", True) and info.name not in _NOT_CHARSETS
    return info.name if text_encoding else None


_NOT_CHARSETS = frozenset({"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape"})


def _strip_bom(raw: bytes) -> tuple[bytes, bool]:
    start = raw.lstrip(b" \t\r\n")
    if start.startswith(_BOM):
        return start[len(_BOM) :], True
    return start, False


def is_batch(raw: bytes) -> bool:
    """Whether ``raw`` opens with an FHS or BHS batch header (after whitespace and a BOM)."""
    return _strip_bom(raw)[0][:3] in (b"FHS", b"BHS")


def raw_msh_fields(raw: bytes) -> tuple[list[str], bytes, bool]:
    """MSH split into fields (``fields[n - 1]`` is MSH-n), the body without BOM, BOM seen.

    MSH itself is read as Latin-1 (every byte maps to one character) so that the charset
    it declares can be found before the rest is decoded.
    """
    body, had_bom = _strip_bom(raw)
    first = _SEGMENT_BREAK.split(body, maxsplit=1)[0].decode("latin-1")
    if not first.startswith("MSH") or len(first) < 8:
        raise ConversionError(
            "message does not start with an MSH segment",
            ack_code="AR",
            error_code="100",
            location="MSH",
        )
    separator = first[3]
    if separator.isalnum() or separator.isspace():
        raise ConversionError(
            "MSH-1 field separator is not a valid delimiter",
            ack_code="AR",
            error_code="102",
            location="MSH^1^1",
        )
    parts = first.split(separator)
    fields = [parts[0], separator, *parts[1:]]  # fields[n] is MSH-n from here on
    return fields[1:], body, had_bom


def _declared_charset(fields: list[str]) -> str | None:
    if len(fields) < 18:
        return None
    encoding = fields[1]
    repetition = encoding[1] if len(encoding) > 1 else "~"
    component = encoding[0] if encoding else "^"
    value = fields[17].split(repetition)[0].split(component)[0].strip()
    return value or None


def decode_message(raw: bytes, *, default_charset: str | None = None) -> str:
    """Decode one message per its MSH-18 (else ``default_charset``, else UTF-8); CR-separated."""
    return decode_with_codec(raw, default_charset=default_charset)[0]


def decode_with_codec(raw: bytes, *, default_charset: str | None = None) -> tuple[str, str]:
    """:func:`decode_message` plus the codec it chose (which ``\\Xhh\\`` escapes use too)."""
    fields, body, had_bom = raw_msh_fields(raw)
    declared = _declared_charset(fields)
    charset = declared or default_charset or ("UNICODE UTF-8" if had_bom else None)
    codec = codec_for(charset) if charset else "utf-8"
    if codec is None:
        raise ConversionError(
            "MSH-18 character set is not supported",
            ack_code="AR",
            error_code="103",
            location="MSH^1^18",
        )
    try:
        text = body.decode(codec)
    except UnicodeError as exc:  # bytes that are not text in the sender's charset
        offset = f" (offset {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        raise ConversionError(
            f"message bytes are not valid {charset or 'UTF-8'}{offset}; "
            "set MSH-18 or the sender's default charset",
            ack_code="AR",
            error_code="102",
            location="MSH^1^18",
        ) from exc
    segments = [s for s in re.split(r"\r\n|\n\r|\r|\n", text) if s.strip()]
    return "\r".join(segments), codec


def split_batch(raw: bytes) -> list[bytes]:
    """Cut an FHS/BHS batch (or a plain run of messages) into single messages, CR-separated.

    Batch header and trailer segments are dropped; each returned message starts with MSH.
    Bytes are never decoded here, so messages in different charsets survive the split.
    """
    body, _ = _strip_bom(raw)
    messages: list[list[bytes]] = []
    for line in _SEGMENT_BREAK.split(body):
        if not line.strip():
            continue
        tag = line[:3]
        if tag in (b"FHS", b"BHS", b"BTS", b"FTS"):
            continue
        if tag == b"MSH":
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        else:
            raise ConversionError(
                "segment before the first MSH in a batch",
                ack_code="AR",
                error_code="100",
                location=tag.decode("latin-1", "replace"),
            )
    return [b"\r".join(segments) + b"\r" for segments in messages]
