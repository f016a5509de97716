"""The value types shared by the converter modules and the server that calls them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Conversion", "ConversionError", "MessageHeader"]


@dataclass(frozen=True)
class MessageHeader:
    """What MSH says about a message: enough to acknowledge it even when conversion fails."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    message_type: str  # "ADT^A01" (MSH-9.1^MSH-9.2)
    version: str
    charset: str | None  # MSH-18 as sent (first repetition), None when empty
    processing_id: str = "P"  # MSH-11, echoed in the ACK
    timestamp: str = ""  # MSH-7 as sent

    @property
    def sender(self) -> str:
        """`application|facility`, the key the server uses for per-sender settings and dedup."""
        return f"{self.sending_application}|{self.sending_facility}"


class ConversionError(Exception):
    """A message that cannot be converted; carries what the ACK's MSA/ERR segments need.

    ``ack_code`` is "AE" (understood, cannot be applied) or "AR" (rejected: unsupported
    type or version, unparseable). ``error_code`` is an HL7 table 0357 code, ``location``
    an ERL such as ``PID^1^3``. ``message`` never contains patient data.
    """

    def __init__(
        self,
        message: str,
        *,
        ack_code: str = "AE",
        error_code: str = "207",
        location: str | None = None,
        header: MessageHeader | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.ack_code = ack_code
        self.error_code = error_code
        self.location = location
        self.header = header

    @property
    def expression(self) -> str | None:
        """FHIRPath-ish pointer at the element at fault (the ERL location)."""
        return self.location

    def __repr__(self) -> str:
        return (
            f"ConversionError({self.message!r}, ack_code={self.ack_code!r}, "
            f"error_code={self.error_code!r}, location={self.location!r})"
        )


@dataclass(frozen=True)
class Conversion:
    """A converted message: the transaction Bundle to commit and the decoded text to keep."""

    header: MessageHeader
    bundle: dict[str, Any]
    text: str
