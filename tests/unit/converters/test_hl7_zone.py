"""HL7 times without an offset: MSH-7's offset, else the hospital's zone at that moment."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from converters import convert
from fhir_server.hl7 import Hl7Settings
from tests.integration.hl7.messages import oru_r01


def observation_times(raw: bytes, zone: Any) -> tuple[set[str], str]:
    bundle = convert(raw, default_timezone=zone).bundle
    resources = [e["resource"] for e in bundle["entry"]]
    times = {r["effectiveDateTime"] for r in resources if r["resourceType"] == "Observation"}
    recorded = next(r["recorded"] for r in resources if r["resourceType"] == "Provenance")
    return times, recorded


def without_offsets(raw: bytes) -> bytes:
    return raw.replace(b"+0900", b"")


def test_offsetless_times_are_read_in_the_zone() -> None:
    times, recorded = observation_times(
        without_offsets(oru_r01("Z1", "MRN-Z1")), ZoneInfo("Asia/Seoul")
    )
    assert times == {"2024-03-05T09:30:00+09:00"}
    assert recorded == "2024-03-05T10:15:00+09:00"


def test_the_offset_follows_daylight_saving() -> None:
    winter = without_offsets(oru_r01("Z2", "MRN-Z2"))
    summer = winter.replace(b"20240305", b"20240705")
    new_york = ZoneInfo("America/New_York")
    assert observation_times(winter, new_york)[0] == {"2024-03-05T09:30:00-05:00"}
    assert observation_times(summer, new_york)[0] == {"2024-07-05T09:30:00-04:00"}


def test_msh7_offset_wins_over_the_zone() -> None:
    raw = oru_r01("Z3", "MRN-Z3").replace(b"20240305093000+0900", b"20240305093000")
    assert observation_times(raw, ZoneInfo("Europe/Berlin"))[0] == {"2024-03-05T09:30:00+09:00"}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, "2024-03-05T09:30:00+09:00"),  # MEDICORE_TIMEZONE
        ("+01:00", "2024-03-05T09:30:00+01:00"),  # a fixed offset, as before
        ("Z", "2024-03-05T09:30:00Z"),
        ("America/New_York", "2024-03-05T09:30:00-05:00"),
    ],
)
def test_the_hl7_setting_overrides_the_hospital_zone(override: str | None, expected: str) -> None:
    settings = Hl7Settings(mllp_port=0, hl7_default_timezone=override)
    zone = settings.time_zone(ZoneInfo("Asia/Seoul"))
    raw = without_offsets(oru_r01("Z4", "MRN-Z4"))
    assert observation_times(raw, zone)[0] == {expected}


def test_a_bad_hl7_zone_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="MEDICORE_HL7_DEFAULT_TIMEZONE"):
        Hl7Settings(hl7_default_timezone="Seoul")
