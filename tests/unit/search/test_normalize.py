"""Normalization shared by write and query time: folding, date ranges, numbers, UCUM."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fhir_server.search.normalize import (
    date_range,
    fold,
    precision_range,
    ucum_canonical,
)


def _ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


def test_fold_case_accents_and_hangul() -> None:
    assert fold("ÉLOÏSE") == fold("eloise") == "eloise"
    assert fold("Straße") == "strasse"
    composed = "홍길동"
    assert fold(unicodedata.normalize("NFD", composed)) == composed
    assert fold("ＡＢＣ") == "abc"  # full-width letters (NFKC)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2020", _ms(2020, 1, 1), _ms(2021, 1, 1) - 1),
        ("2020-02", _ms(2020, 2, 1), _ms(2020, 3, 1) - 1),
        ("2020-12-31", _ms(2020, 12, 31), _ms(2021, 1, 1) - 1),
        ("2020-01-01T09:00:00+09:00", _ms(2020, 1, 1), _ms(2020, 1, 1) + 999),
        ("2020-01-01T00:00:00.5Z", _ms(2020, 1, 1) + 500, _ms(2020, 1, 1) + 599),
    ],
)
def test_date_ranges(text: str, low: int, high: int) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize("bad", ["2020-13", "2020-02-30", "2020-1-1", "x", "2020-01-01T24:00"])
def test_invalid_dates(bad: str) -> None:
    assert date_range(bad) is None


def test_precision_ranges() -> None:
    assert precision_range(Decimal("100")) == (99.5, 100.5)
    assert precision_range(Decimal("5.40")) == pytest.approx((5.395, 5.405))
    assert precision_range(Decimal("1e2")) == (50.0, 150.0)


def test_ucum() -> None:
    value, unit = ucum_canonical(5.0, "mg/dL") or (0.0, "")
    assert unit == "g/L" and value == pytest.approx(0.05)
    assert ucum_canonical(2.0, "h") == (7200.0, "s")
    assert ucum_canonical(1.0, "mm[Hg]") is None
