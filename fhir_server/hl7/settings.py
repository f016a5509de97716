"""HL7 v2 intake settings: ``MEDICORE_*`` environment variables, overridden by CLI flags.

Per-sender default charsets (for senders that leave MSH-18 empty) come from
``MEDICORE_HL7_SENDER_CHARSETS``, a JSON object keyed by the sender as
``"<MSH-3>|<MSH-4>"`` (exact) or just ``"<MSH-3>"`` (any facility), e.g.
``{"KLAB|SEOULGH": "KS X 1001", "OLDADT": "8859/1"}``. A sender not named there uses
``MEDICORE_HL7_DEFAULT_CHARSET`` (``--hl7-default-charset``), and failing that UTF-8.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fhir_server.zones import load_zone

_FIXED_OFFSET = re.compile(r"Z|[+-](0\d|1[0-4]):[0-5]\d")


class Hl7Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDICORE_", extra="ignore")

    mllp_port: int = Field(default=2575, ge=0, le=65535)  # 0 turns the listener off
    mllp_host: str | None = None  # default: the HTTP host (MEDICORE_HOST)
    mllp_max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    mllp_idle_timeout: float = Field(default=600.0, gt=0)  # seconds without a frame
    hl7_default_charset: str | None = None
    hl7_sender_charsets: dict[str, str] = Field(default_factory=dict)
    # Override of MEDICORE_TIMEZONE for HL7 times without an offset when MSH-7 has none:
    # an IANA name, or a fixed offset ("+09:00", "Z") for a feed that ignores DST.
    hl7_default_timezone: str | None = None
    hl7_recover_on_startup: bool = True  # re-run messages left in status "received"

    @field_validator("hl7_default_timezone")
    @classmethod
    def _zone_or_offset(cls, value: str | None) -> str | None:
        if value and not _FIXED_OFFSET.fullmatch(value):
            try:
                load_zone(value)
            except ValueError:
                raise ValueError(
                    f"MEDICORE_HL7_DEFAULT_TIMEZONE {value!r} is neither an IANA time zone "
                    "name nor an offset such as +09:00 or Z"
                ) from None
        return value or None

    def time_zone(self, hospital: tzinfo) -> str | tzinfo:
        """How offset-less HL7 times are read: the override, else the hospital's zone."""
        value = self.hl7_default_timezone
        if not value:
            return hospital
        return value if _FIXED_OFFSET.fullmatch(value) else load_zone(value)

    def charset_for(self, sender: str | None) -> str | None:
        """The charset to assume when ``sender`` ("app|facility") leaves MSH-18 empty."""
        if sender:
            exact = self.hl7_sender_charsets.get(sender)
            if exact:
                return exact
            app = self.hl7_sender_charsets.get(sender.split("|", 1)[0])
            if app:
                return app
        return self.hl7_default_charset or None
