"""HL7 v2 acknowledgements (original mode): MSA echoes MSH-10, ERR explains AE/AR."""

from __future__ import annotations

from datetime import datetime

from converters._model import ConversionError, MessageHeader

__all__ = ["ERROR_TEXT", "build_ack"]

#: HL7 table 0357 (message error condition codes).
ERROR_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def _esc(text: str) -> str:
    """Escape free text for the standard delimiters ``|^~\\&`` and keep it on one line."""
    out = text.replace("\\", "\\E\\")
    for ch, seq in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(ch, seq)
    return out.replace("\r", " ").replace("\n", " ")


def _timestamp(moment: datetime) -> str:
    text = moment.strftime("%Y%m%d%H%M%S")
    return text + (moment.strftime("%z") if moment.tzinfo else "")


def _pre_25(version: str) -> bool:
    try:
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) < (2, 5)
    except ValueError:
        return False


def build_ack(
    header: MessageHeader | None,
    *,
    code: str,
    error: ConversionError | None = None,
    control_id: str,
    timestamp: datetime,
) -> str:
    """The ACK for a message, CR-separated; ``header`` None when even MSH was unreadable."""
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise ValueError(f"not an acknowledgment code: {code}")
    h = header or MessageHeader("", "", "", "", "", "", "2.5", None)
    trigger = h.message_type.partition("^")[2]
    version = h.version or "2.5"
    msh = [
        "MSH",
        "^~\\&",
        h.receiving_application,
        h.receiving_facility,
        h.sending_application,
        h.sending_facility,
        _timestamp(timestamp),
        "",
        f"ACK^{_esc(trigger)}^ACK" if trigger else "ACK",
        _esc(control_id),
        h.processing_id or "P",
        _esc(version),
    ]
    text = _esc(error.message) if error else ""
    segments = [
        "|".join(msh),
        "|".join(["MSA", code, _esc(h.control_id), text][: 4 if text else 3]),
    ]
    if error is not None and code != "AA":
        err_code = error.error_code
        err_text = ERROR_TEXT.get(err_code, "")
        location = error.location or ""
        if _pre_25(version):
            # ERR-1 (ELD): segment^sequence^field^code&text&HL70357
            eld = [*[*location.split("^"), "", ""][:3], f"{err_code}&{err_text}&HL70357"]
            segments.append("ERR|" + "^".join(eld))
        else:
            segments.append(
                "|".join(
                    ["ERR", "", location, f"{err_code}^{err_text}^HL70357", "E", "", "", "", text]
                )
            )
    return "\r".join(segments) + "\r"
