"""Date searches in the hospital's zone (MEDICORE_TIMEZONE), alike on SQLite and MongoDB.

A Korean hospital's ``date=2024-01`` is January in Seoul: it includes 2024-01-31T23:30+09:00
and excludes 2024-02-01T08:00+09:00 (both are still January in UTC). Calendar dates
(birthDate) are read in the same zone, so an equal date always matches itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from fhir_server.search.registry import SearchRegistry
from tests.integration.search.stores import Backend

SEOUL = SearchRegistry.default().in_zone(ZoneInfo("Asia/Seoul"))
UTC_REGISTRY = SearchRegistry.default()


def observation(oid: str, when: str, updated: str = "2024-01-15T10:00:30+09:00") -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"lastUpdated": updated},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "effectiveDateTime": when,
    }


RESOURCES = [
    observation("jan-31-late", "2024-01-31T23:30:00+09:00"),
    observation("feb-1-morning", "2024-02-01T08:00:00+09:00", "2024-01-15T01:00:30Z"),
    observation("jan-1-early", "2024-01-01T00:10:00+09:00", "2024-01-15T10:00:30Z"),
    observation("dec-31-utc", "2023-12-31T20:00:00Z"),  # 2024-01-01T05:00 in Seoul
    {"resourceType": "Patient", "id": "born-15", "birthDate": "2024-01-15"},
    {"resourceType": "Patient", "id": "born-16", "birthDate": "2024-01-16"},
    {"resourceType": "Patient", "id": "born-jan", "birthDate": "2024-01"},
]


@pytest.fixture(params=["sqlite", "mongo"])
async def seoul(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    backend = Backend(request.param, SEOUL)
    await backend.open()
    for resource in RESOURCES:
        await backend.put(resource)
    yield backend
    await backend.close()


@pytest.mark.parametrize(
    ("resource_type", "params", "expected"),
    [
        ("Observation", [("date", "2024-01")], {"jan-31-late", "jan-1-early", "dec-31-utc"}),
        ("Observation", [("date", "2024-02")], {"feb-1-morning"}),
        ("Observation", [("date", "2024-01-31")], {"jan-31-late"}),
        ("Observation", [("date", "2024-02-01")], {"feb-1-morning"}),
        ("Observation", [("date", "2024-01-01")], {"jan-1-early", "dec-31-utc"}),
        ("Observation", [("date", "lt2024-02-01")], {"jan-31-late", "jan-1-early", "dec-31-utc"}),
        ("Observation", [("date", "ge2024-02-01T08:00")], {"feb-1-morning"}),
        ("Observation", [("date", "gt2024-02-01T08:00")], set()),
        # an explicit offset is taken as written
        ("Observation", [("date", "2024-02-01T08:00:00+09:00")], {"feb-1-morning"}),
        ("Observation", [("date", "2024-01-31T23:00:00Z")], {"feb-1-morning"}),
        # _lastUpdated=2024-01-15T10:00 is 10:00-10:01 in Seoul (01:00-01:01 UTC)
        (
            "Observation",
            [("_lastUpdated", "2024-01-15T10:00")],
            {"jan-31-late", "feb-1-morning", "dec-31-utc"},
        ),
        ("Patient", [("birthdate", "2024-01-15")], {"born-15"}),
        ("Patient", [("birthdate", "2024-01-16")], {"born-16"}),
        # born-jan (the month) overlaps the ranges above and below a day in it
        ("Patient", [("birthdate", "ge2024-01-16")], {"born-16", "born-jan"}),
        ("Patient", [("birthdate", "le2024-01-15")], {"born-15", "born-jan"}),
        ("Patient", [("birthdate", "2024-01")], {"born-15", "born-16", "born-jan"}),
        ("Patient", [("birthdate", "sa2024-01-15")], {"born-16"}),
    ],
)
async def test_dates_without_offset_are_read_in_the_hospital_zone(
    seoul: Backend, resource_type: str, params: list[tuple[str, str]], expected: set[str]
) -> None:
    assert await seoul.ids(resource_type, params) == expected


async def test_the_same_data_read_in_utc_puts_the_boundary_elsewhere() -> None:
    """The zone is what moves the boundary: in UTC, February 1st 08:00 in Seoul is
    January, and the two early ones in Seoul's January are December."""
    backend = Backend("sqlite", UTC_REGISTRY)
    await backend.open()
    try:
        for resource in RESOURCES:
            await backend.put(resource)
        january = await backend.ids("Observation", [("date", "2024-01")])
        assert january == {"jan-31-late", "feb-1-morning"}
        assert await backend.ids("Patient", [("birthdate", "2024-01-15")]) == {"born-15"}
    finally:
        await backend.close()
