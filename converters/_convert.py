"""Entry points: read the header, pick the mapping for MSH-9, assemble the Bundle."""

from __future__ import annotations

import re
from datetime import datetime

from converters._adt import ADT_EVENTS, convert_adt
from converters._context import Context
from converters._datatypes import DefaultZone, dtm, zone_offset
from converters._message import Segment, V2Message, parse_message
from converters._model import Conversion, ConversionError, MessageHeader
from converters._orders import ORDER_TYPES, convert_order
from converters._raw import decode_with_codec, raw_msh_fields
from converters._results import convert_oru

__all__ = ["SUPPORTED_TYPES", "convert", "read_header"]

SUPPORTED_TYPES = sorted({f"ADT^{e}" for e in ADT_EVENTS} | {"ORU^R01"} | ORDER_TYPES)
_VERSION = re.compile(r"^2\.[1-9](\.\d+)?$")


def _std_escape(text: str) -> str:
    out = text.replace("\\", "\\E\\")
    for ch, seq in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(ch, seq)
    return out


def _hd(seg: Segment, n: int) -> str:
    """An HD field re-expressed with standard delimiters (for the ACK and sender keys)."""
    rep = seg.rep(n)
    if rep is None:
        return ""
    parts = [_std_escape(rep.c(i)) for i in range(1, len(rep) + 1)]
    return "^".join(parts).rstrip("^")


def _header(msg: V2Message, charset: str | None) -> MessageHeader:
    msh = msg.msh
    return MessageHeader(
        sending_application=_hd(msh, 3),
        sending_facility=_hd(msh, 4),
        receiving_application=_hd(msh, 5),
        receiving_facility=_hd(msh, 6),
        control_id=msh.get(10),
        message_type="^".join(p for p in (msh.get(9, 1), msh.get(9, 2)) if p),
        version=msh.get(12),
        charset=charset,
        processing_id=msh.get(11) or "P",
        timestamp=msh.get(7),
    )


def _fallback_header(raw: bytes) -> MessageHeader | None:
    """A best-effort header read as Latin-1, for ACKing messages that cannot be decoded."""
    try:
        fields, _, _ = raw_msh_fields(raw)
    except Exception:  # nothing readable: the ACK goes out without a header
        return None
    comp = fields[1][:1] or "^"

    def field(n: int) -> str:
        return fields[n - 1] if len(fields) >= n else ""

    return MessageHeader(
        sending_application=field(3),
        sending_facility=field(4),
        receiving_application=field(5),
        receiving_facility=field(6),
        control_id=field(10).split(comp)[0],
        message_type="^".join(field(9).split(comp)[:2]),
        version=field(12).split(comp)[0],
        charset=(field(18).split(comp)[0] or None),
        processing_id=field(11).split(comp)[0] or "P",
        timestamp=field(7).split(comp)[0],
    )


def _parse(raw: bytes, default_charset: str | None) -> tuple[MessageHeader, V2Message, str]:
    try:
        text, codec = decode_with_codec(raw, default_charset=default_charset)
        msg = parse_message(text, codec=codec)
    except ConversionError as exc:
        exc.header = exc.header or _fallback_header(raw)
        raise
    header = _header(msg, msg.msh.get(18) or None)
    msh = msg.msh
    for n, name in ((9, "MSH-9"), (10, "MSH-10"), (12, "MSH-12")):
        if not msh.get(n):
            raise ConversionError(
                f"required field {name} is empty",
                ack_code="AR",
                error_code="101",
                location=msh.loc(n),
                header=header,
            )
    if not _VERSION.match(header.version):
        raise ConversionError(
            "unsupported HL7 version",
            ack_code="AR",
            error_code="203",
            location=msh.loc(12),
            header=header,
        )
    return header, msg, text


def read_header(raw: bytes, *, default_charset: str | None = None) -> MessageHeader:
    """The MSH of one message; raises ConversionError (AR) when it cannot be read."""
    try:
        return _parse(raw, default_charset)[0]
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"header cannot be read ({type(exc).__name__})",
            ack_code="AR",
            error_code="100",
            location="MSH",
            header=_fallback_header(raw),
        ) from exc


def _timezone(msh: Segment, default: DefaultZone) -> DefaultZone:
    match = re.search(r"([+-])(\d{2})(\d{2})$", msh.get(7))
    return f"{match.group(1)}{match.group(2)}:{match.group(3)}" if match else default


def _instant(value: str | None, tz: DefaultZone) -> str:
    """Pad a dateTime to instant precision (Provenance.recorded)."""
    assert value
    if "T" in value:
        return value
    parts = ([*value.split("-"), "01", "01"])[:3]
    midnight = datetime(int(parts[0]), int(parts[1]), int(parts[2]))
    return f"{'-'.join(parts)}T00:00:00{zone_offset(tz, midnight) or 'Z'}"


def _dispatch(ctx: Context) -> None:
    kind, _, event = ctx.header.message_type.partition("^")
    if kind == "ADT":
        if event not in ADT_EVENTS:
            raise ConversionError(
                "unsupported ADT event", ack_code="AR", error_code="201", location="MSH^1^9^1^2"
            )
        convert_adt(ctx)
    elif kind == "ORU":
        if event != "R01":
            raise ConversionError(
                "unsupported ORU event", ack_code="AR", error_code="201", location="MSH^1^9^1^2"
            )
        convert_oru(ctx)
    elif ctx.header.message_type in ORDER_TYPES:
        convert_order(ctx)
    else:
        raise ConversionError(
            "unsupported message type", ack_code="AR", error_code="200", location="MSH^1^9"
        )


def convert(
    raw: bytes,
    *,
    default_charset: str | None = None,
    message_ref: str | None = None,
    default_timezone: DefaultZone = "Z",
) -> Conversion:
    """Convert one message into a FHIR transaction Bundle.

    ``default_charset`` applies when MSH-18 is empty; ``default_timezone`` (a fixed offset
    such as "+09:00", or a ``tzinfo`` such as ``ZoneInfo("Asia/Seoul")``, whose offset at
    each time is used) to times without an offset when MSH-7 has none either;
    ``message_ref`` names the stored raw message in the Provenance (default
    ``<MSH-3>|<MSH-4>|<MSH-10>``).
    """
    try:
        return _convert(raw, default_charset, message_ref, default_timezone)
    except ConversionError:
        raise
    except Exception as exc:  # a mapping bug must still end in an ACK, never a lost message
        raise ConversionError(
            f"internal error while converting ({type(exc).__name__})",
            ack_code="AE",
            error_code="207",
            header=_fallback_header(raw),
        ) from exc


def _convert(
    raw: bytes, default_charset: str | None, message_ref: str | None, default_timezone: DefaultZone
) -> Conversion:
    header, msg, text = _parse(raw, default_charset)
    msh = msg.msh
    tz = _timezone(msh, default_timezone)
    ctx = Context(header=header, msg=msg, tz=tz)
    try:
        if not msh.get(7):
            raise ConversionError(
                "required field MSH-7 is empty",
                ack_code="AR",
                error_code="101",
                location=msh.loc(7),
            )
        try:
            recorded = _instant(dtm(msh.get(7), loc=msh.loc(7), default_tz=tz), tz)
        except ConversionError as exc:
            exc.ack_code = "AR"
            raise
        _dispatch(ctx)
        evn = msg.first("EVN")
        occurred = (ctx.dt(evn, 6) or ctx.dt(evn, 2)) if evn is not None else None
        ctx.builder.provenance(
            message_ref=message_ref or f"{header.sender}|{header.control_id}",
            message_type=msh.get(9, 1) + "^" + msh.get(9, 2),
            application=msh.get(3, 1) or msh.get(3, 2),
            facility=msh.get(4, 1) or msh.get(4, 2),
            recorded=recorded,
            occurred=occurred,
        )
    except ConversionError as exc:
        exc.header = header
        raise
    return Conversion(header=header, bundle=ctx.builder.bundle(), text=text)
