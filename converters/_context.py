"""Per-message state shared by the segment mappers: header, time zone, default authority."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from converters._bundle import BundleBuilder
from converters._datatypes import DefaultZone, authority_system, dtm
from converters._message import Segment, V2Message
from converters._model import ConversionError, MessageHeader

__all__ = ["Context", "missing"]


def missing(seg: Segment | None, n: int | None = None, *, what: str) -> ConversionError:
    """The AE/101 (or AE/100 for a whole missing segment) error for a required element."""
    if seg is None:
        return ConversionError(
            f"required segment {what} is missing", error_code="100", location=what
        )
    return ConversionError(f"required field {what} is empty", error_code="101", location=seg.loc(n))


@dataclass
class Context:
    """Everything a mapper needs besides the segment it maps."""

    header: MessageHeader
    msg: V2Message
    tz: DefaultZone  # MSH-7's offset, else the configured zone
    builder: BundleBuilder = field(default_factory=BundleBuilder)

    @property
    def event(self) -> str:
        return self.header.message_type.partition("^")[2]

    @cached_property
    def default_system(self) -> str | None:
        """Identifier system for identifiers without an assigning authority: the sender's."""
        msh = self.msg.msh
        return authority_system(msh.get(4, 1), msh.get(4, 2), msh.get(4, 3)) or authority_system(
            msh.get(3, 1), msh.get(3, 2), msh.get(3, 3)
        )

    def dt(self, seg: Segment, n: int, comp: int = 1) -> str | None:
        """Field ``n`` as a FHIR dateTime in the message's time zone."""
        return dtm(seg.get(n, comp), loc=seg.loc(n), default_tz=self.tz)
