"""Dates without an offset are the hospital's wall clock (MEDICORE_TIMEZONE), stored or searched."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from fhir_server.search.extract import date_values, extract_index
from fhir_server.search.normalize import _date_range, date_range
from fhir_server.search.parse import parse_search
from fhir_server.search.query import DateValue
from fhir_server.search.registry import SearchRegistry

SEOUL = ZoneInfo("Asia/Seoul")
BERLIN = ZoneInfo("Europe/Berlin")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2024-01", "2024-01-01T00:00:00+09:00", "2024-02-01T00:00:00+09:00"),
        ("2024", "2024-01-01T00:00:00+09:00", "2025-01-01T00:00:00+09:00"),
        ("2024-01-15", "2024-01-15T00:00:00+09:00", "2024-01-16T00:00:00+09:00"),
        ("2024-01-15T10:00", "2024-01-15T10:00:00+09:00", "2024-01-15T10:01:00+09:00"),
        ("2024-01-15T10:00:30", "2024-01-15T10:00:30+09:00", "2024-01-15T10:00:31+09:00"),
        # an explicit offset wins over the zone
        ("2024-01-15T10:00:30Z", "2024-01-15T10:00:30+00:00", "2024-01-15T10:00:31+00:00"),
        ("2024-01-15T10:00:30-05:00", "2024-01-15T10:00:30-05:00", "2024-01-15T10:00:31-05:00"),
    ],
)
def test_a_value_without_offset_is_read_in_the_zone(text: str, low: str, high: str) -> None:
    assert date_range(text, SEOUL) == (ms(low), ms(high) - 1)


def test_without_a_zone_it_is_utc_as_before() -> None:
    assert date_range("2024-01-15") == (
        ms("2024-01-15T00:00:00+00:00"),
        ms("2024-01-16T00:00:00+00:00") - 1,
    )
    assert date_range("2024-01-15", UTC) == date_range("2024-01-15")
    for text in ("2024-01-15", "2024-01-15T10:00:30.5Z", "2024-01-15T10:00:30+09:00", "2024"):
        assert date_range(text) == _date_range(text)  # the fast path agrees with the slow one


def test_a_local_day_follows_daylight_saving() -> None:
    low, high = date_range("2024-03-31", BERLIN)  # clocks go forward: a 23-hour day
    assert (low, high + 1) == (ms("2024-03-31T00:00:00+01:00"), ms("2024-04-01T00:00:00+02:00"))
    assert (high + 1 - low) == 23 * 3_600_000
    low, high = date_range("2024-10-27", BERLIN)  # and back: 25 hours
    assert (high + 1 - low) == 25 * 3_600_000


def test_invalid_and_extreme_values_stay_refused_or_bounded() -> None:
    assert date_range("2024-02-30", SEOUL) is None
    assert date_range("2024-01-15T25:00", SEOUL) is None
    assert date_range("0001-01-01", SEOUL) is None  # before the first indexable instant
    assert date_range("9999", SEOUL) is not None


def test_calendar_dates_and_periods_are_indexed_in_the_zone() -> None:
    assert date_values("2024-01-15", SEOUL) == [date_range("2024-01-15", SEOUL)]
    period = {"start": "2024-01-15", "end": "2024-01-16T08:00:00+09:00"}
    assert date_values(period, SEOUL) == [
        (ms("2024-01-15T00:00:00+09:00"), ms("2024-01-16T08:00:01+09:00") - 1)
    ]
    registry = SearchRegistry.default().in_zone(SEOUL)
    entries = extract_index(
        {"resourceType": "Patient", "id": "p", "birthDate": "2024-01-15"}, registry
    )
    assert ("birthdate", *date_range("2024-01-15", SEOUL)) in entries.dates  # type: ignore[misc]
    plain = extract_index(
        {"resourceType": "Patient", "id": "p", "birthDate": "2024-01-15"}, SearchRegistry.default()
    )
    assert ("birthdate", *date_range("2024-01-15")) in plain.dates  # type: ignore[misc]


def test_search_values_are_parsed_in_the_registry_zone() -> None:
    registry = SearchRegistry.default().in_zone(SEOUL)
    query = parse_search("Observation", [("date", "ge2024-01")], registry, base_url="")
    value = query.criteria[0].values[0]
    assert isinstance(value, DateValue)
    assert (value.prefix, value.low) == ("ge", ms("2024-01-01T00:00:00+09:00"))
    composite = parse_search(
        "Observation",
        [("code-value-date", "http://loinc.org|1-8$2024-01-15")],
        registry,
        base_url="",
    )
    second = composite.criteria[0].values[0].second  # type: ignore[attr-defined]
    assert second.low == ms("2024-01-15T00:00:00+09:00")


def test_registries_per_zone_are_built_once_and_utc_is_the_default() -> None:
    assert SearchRegistry.default().in_zone(SEOUL) is SearchRegistry.default().in_zone(SEOUL)
    assert SearchRegistry.default().in_zone(ZoneInfo("Etc/UTC")) is SearchRegistry.default()
    assert SearchRegistry.configured([], zone=UTC) is SearchRegistry.default()
    assert SearchRegistry.default().zone is None


def test_ap_reaches_a_tenth_of_the_gap_to_the_parse_clock() -> None:
    """The margin depends on "now": it is read from the registry's clock, once, at parse."""
    now = ms("2026-01-01T00:00:00+00:00") / 1000
    registry = SearchRegistry.default().with_clock(lambda: now)
    query = parse_search("Observation", [("date", "ap2016-01-01")], registry, base_url="")
    value = query.criteria[0].values[0]
    assert isinstance(value, DateValue)
    gap = ms("2026-01-01T00:00:00+00:00") - ms("2016-01-01T00:00:00+00:00")
    assert value.margin == gap // 10  # about a year either side
    near = parse_search("Observation", [("date", "ap2025-12-31")], registry, base_url="")
    assert near.criteria[0].values[0].margin == 86_400_000  # type: ignore[union-attr]
    later = SearchRegistry.default().with_clock(lambda: now + 10 * 365 * 86_400)
    again = parse_search("Observation", [("date", "ap2016-01-01")], later, base_url="")
    assert again.criteria[0].values[0].margin > value.margin  # type: ignore[union-attr]
