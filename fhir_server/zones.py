"""The hospital's time zone (``MEDICORE_TIMEZONE``): how times written without an offset
are read, in FHIR searches, in calendar dates and in HL7 messages."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONEINFO_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")


def local_zone_name() -> str:
    """The machine's zone as an IANA name: ``TZ``, else ``/etc/localtime``, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _known(tz):
        return tz
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        target = ""
    for prefix in _ZONEINFO_DIRS:
        if target.startswith(prefix) and _known(target[len(prefix) :]):
            return target[len(prefix) :]
    try:
        named = Path("/etc/timezone").read_text().strip()
    except OSError:
        named = ""
    return named if named and _known(named) else "UTC"


def _known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def load_zone(name: str) -> ZoneInfo:
    """``name`` as a zone, or ValueError saying what MEDICORE_TIMEZONE must be."""
    if not name or not _known(name):
        raise ValueError(
            f"MEDICORE_TIMEZONE {name!r} is not an IANA time zone name (e.g. Asia/Seoul, "
            "Europe/Berlin, UTC)"
        )
    return ZoneInfo(name)


__all__ = ["load_zone", "local_zone_name"]
