"""The HL7 inbox: one store record per message, raw bytes kept before anything else happens.

Record ``hl7_inbox`` / key ``<MSH-3>|<MSH-4>|<MSH-10>`` (``unparsed|<sha256>`` when MSH
cannot be read; ``<key>|<digest[:16]>`` for a message that reused a taken control id with
other content, see `content_digest`). The document::

    status        received | processed | failed
    raw           the bytes as they arrived, base64
    text          the decoded message (None while it cannot be decoded)
    sender, control_id, message_type, version, source (mllp | http)
    ack, ack_code the ACK that was sent (None while received)
    error         {code (HL7 table 0357), location (ERL), text} for AE/AR, no patient data
    received_at, updated_at, attempts
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from converters import ConversionError, MessageHeader
from fhir_server.storage.base import RecordExists, RecordWrite, Store, WriteBatch

__all__ = [
    "KIND",
    "REUSED_CONTROL_ID",
    "InboxError",
    "content_digest",
    "failed_doc",
    "inbox_key",
    "insert",
    "processed_doc",
    "raw_bytes",
    "received_doc",
    "reused_key",
    "summary",
]

KIND = "hl7_inbox"
REUSED_CONTROL_ID = "control id reused with different content"
_SEGMENT_END = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class InboxError:
    """Why a message was not applied: what the ACK's ERR segment and the operators see."""

    code: str  # HL7 table 0357
    location: str | None  # ERL, e.g. PID^1^3
    text: str
    expression: str | None = None  # FHIRPath of the element at fault, for FHIR failures

    @classmethod
    def of(cls, exc: ConversionError) -> InboxError:
        return cls(exc.error_code, exc.location, exc.message)

    def as_conversion_error(self, ack_code: str) -> ConversionError:
        text = f"{self.text} ({self.expression})" if self.expression else self.text
        return ConversionError(
            text, ack_code=ack_code, error_code=self.code, location=self.location
        )


def now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def inbox_key(header: MessageHeader | None, raw: bytes) -> str:
    """Sender + MSH-10 (the duplicate key); a digest of the bytes when MSH is unreadable."""
    if header is None or not header.control_id:
        return f"unparsed|{hashlib.sha256(raw).hexdigest()}"
    return f"{header.sender}|{header.control_id}"


def content_digest(raw: bytes) -> str:
    """SHA-256 of the message as a resend would carry it: MSH-7 blanked, segments CR-joined.

    MSH-7 (date/time of message) is the one field interface engines restamp when they
    resend; every other byte, MSH-10 included, must match for "the same message". Segment
    ends are normalized because HTTP clients turn CR into CRLF or LF.
    """
    segments = [s for s in _SEGMENT_END.split(raw.strip(b"\x0b\x1c\r\n")) if s]
    if segments and segments[0][:3] == b"MSH" and len(segments[0]) > 3:
        sep = segments[0][3:4]
        fields = segments[0].split(sep)
        if len(fields) > 6:  # fields[0] is "MSH", fields[1] MSH-2: MSH-n is fields[n - 1]
            fields[6] = b""
            segments[0] = sep.join(fields)
    return hashlib.sha256(b"\r".join(segments)).hexdigest()


def reused_key(key: str, digest: str) -> str:
    """Where a message reusing a taken control id with other content is kept."""
    return f"{key}|{digest[:16]}"


def _header_fields(header: MessageHeader | None) -> dict[str, Any]:
    if header is None:
        return {"sender": None, "control_id": None, "message_type": None, "version": None}
    return {
        "sender": header.sender,
        "control_id": header.control_id,
        "message_type": header.message_type,
        "version": header.version,
    }


def received_doc(
    raw: bytes, *, header: MessageHeader | None, text: str | None, source: str, at: datetime
) -> dict[str, Any]:
    return {
        "status": "received",
        "raw": base64.b64encode(raw).decode("ascii"),
        "text": text,
        **_header_fields(header),
        "source": source,
        "ack": None,
        "ack_code": None,
        "error": None,
        "received_at": _iso(at),
        "updated_at": _iso(at),
        "attempts": 0,
    }


def processed_doc(
    base: dict[str, Any], *, header: MessageHeader, text: str, ack: str, at: datetime
) -> dict[str, Any]:
    return {
        **base,
        **_header_fields(header),
        "status": "processed",
        "text": text,
        "ack": ack,
        "ack_code": "AA",
        "error": None,
        "updated_at": _iso(at),
        "attempts": int(base.get("attempts", 0)) + 1,
    }


def failed_doc(
    base: dict[str, Any],
    *,
    header: MessageHeader | None,
    ack: str,
    ack_code: str,
    error: InboxError,
    at: datetime,
) -> dict[str, Any]:
    fields = _header_fields(header) if header is not None else {}
    return {
        **base,
        **fields,
        "status": "failed",
        "ack": ack,
        "ack_code": ack_code,
        "error": {
            "code": error.code,
            "location": error.location,
            "expression": error.expression,
            "text": error.text,
        },
        "updated_at": _iso(at),
        "attempts": int(base.get("attempts", 0)) + 1,
    }


def raw_bytes(doc: dict[str, Any]) -> bytes:
    return base64.b64decode(doc["raw"])


def summary(key: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What a listing shows: no raw bytes, no message text."""
    return {
        "id": key,
        "status": doc.get("status"),
        "sender": doc.get("sender"),
        "control_id": doc.get("control_id"),
        "message_type": doc.get("message_type"),
        "ack_code": doc.get("ack_code"),
        "error": doc.get("error"),
        "source": doc.get("source"),
        "received_at": doc.get("received_at"),
        "updated_at": doc.get("updated_at"),
        "attempts": doc.get("attempts"),
    }


async def insert(store: Store, key: str, doc: dict[str, Any]) -> dict[str, Any] | None:
    """Store ``doc`` unless the key is taken; returns the record already there, if any."""
    try:
        await store.commit(WriteBatch(records=[RecordWrite(KIND, key, doc, if_absent=True)]))
    except RecordExists:
        return await store.get_record(KIND, key) or {}
    return None


async def replace(store: Store, key: str, doc: dict[str, Any]) -> None:
    await store.commit(WriteBatch(records=[RecordWrite(KIND, key, doc)]))
