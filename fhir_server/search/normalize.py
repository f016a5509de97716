"""Value normalization shared by extraction (write time) and parsing (query time)."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation

# Dates are indexed as integer milliseconds since the epoch (UTC), inclusive ranges. A value
# written without an offset (a calendar date, a search value) is read in the hospital's zone,
# the same zone on both sides, so birthdate=2024-01-15 finds birthDate 2024-01-15.
MIN_MS = -62135596800000  # 0001-01-01T00:00:00Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fold(text: str) -> str:
    """Case- and accent-insensitive form (NFKC so Hangul syllables and jamo agree)."""
    if text.isascii():
        # ASCII has no decompositions or combining marks, and casefold() is lower() there.
        return text.lower().strip()
    if len(text) <= _CACHED_LENGTH:
        return _fold_cached(text)
    return _fold_unicode(text)


def _fold_unicode(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join([ch for ch in decomposed if not unicodedata.combining(ch)])
    return unicodedata.normalize("NFKC", stripped).casefold().strip()


# Names, displays and codes repeat across resources; long free text is not cached.
_CACHED_LENGTH = 128
_fold_cached = functools.lru_cache(maxsize=4096)(_fold_unicode)


def exact(text: str) -> str:
    """The form :exact compares: Unicode-normalized (NFC), case and accents kept."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def date_range(text: str, zone: tzinfo | None = None) -> tuple[int, int] | None:
    """The inclusive [low, high] range in ms a FHIR date/dateTime/instant covers.

    Without an offset in ``text`` the wall-clock range is read in ``zone`` (None: UTC).
    """
    m = _FULL_DATE_RE.fullmatch(text)
    if m is not None and (zone is None or m.group(6) is not None):
        return _full_date_range(*m.groups())
    return _date_range(text, zone)


# Full dates and seconds-precision times (the usual forms), on integer microseconds.
_FULL_DATE_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)
_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_US = MIN_MS * 1000  # datetime.min and datetime.max: beyond them _date_range overflows
_MAX_US = MAX_MS * 1000 + 999


@functools.lru_cache(maxsize=1024)
def _day_start_us(day: str) -> int | None:
    """``YYYY-MM-DD`` as µs since the epoch, None if no such day (cached: days repeat)."""
    try:
        ordinal = date(int(day[:4]), int(day[5:7]), int(day[8:])).toordinal()
    except ValueError:
        return None
    return (ordinal - _EPOCH_ORDINAL) * _US_PER_DAY


def _full_date_range(
    day: str,
    hour: str | None,
    minute: str | None,
    second: str | None,
    frac: str | None,
    tz: str | None,
) -> tuple[int, int] | None:
    """``_date_range`` for what ``_FULL_DATE_RE`` matches, without datetime objects."""
    start = _day_start_us(day)
    if start is None:
        return None
    if hour is None or minute is None or second is None:
        end = start + _US_PER_DAY
    else:
        h, m, s = int(hour), int(minute), int(second)
        if h > 23 or m > 59 or s > 59:
            return None
        start += ((h * 60 + m) * 60 + s) * 1_000_000
        if frac:
            start += int((frac + "000000")[:6])
        if tz and tz != "Z":
            offset = (int(tz[1:3]) * 60 + int(tz[4:6])) * 60_000_000
            start += offset if tz[0] == "-" else -offset
        if not _MIN_US <= start <= _MAX_US:
            return None
        if not frac:
            end = start + 1_000_000
        elif len(frac) < 3:
            end = start + 10 ** (3 - len(frac)) * 1000
        else:
            end = start + 1000
    if end > _MAX_US:
        return None
    return start // 1000, end // 1000 - 1


def _date_range(text: str, zone: tzinfo | None = None) -> tuple[int, int] | None:
    """``date_range`` for every form (partial dates, odd spacing), on datetime objects."""
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    try:
        year = int(m["y"])
        tz = m["tz"]
        offset = timedelta(0)
        if tz and tz != "Z":
            sign = -1 if tz[0] == "-" else 1
            offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        # Aware arithmetic within one zone is wall-clock: a local day is 23-25 h across DST.
        local = UTC if tz or zone is None else zone
        if m["m"] is None:
            start = datetime(year, 1, 1, tzinfo=local)
            end = datetime(year + 1, 1, 1, tzinfo=local) if year < 9999 else None
        elif m["d"] is None:
            month = int(m["m"])
            start = datetime(year, month, 1, tzinfo=local)
            nxt = (year + 1, 1) if month == 12 else (year, month + 1)
            end = datetime(nxt[0], nxt[1], 1, tzinfo=local) if nxt[0] <= 9999 else None
        else:
            start = datetime(year, int(m["m"]), int(m["d"]), tzinfo=local)
            if m["H"] is None:
                end = start + timedelta(days=1)
            else:
                hour, minute = int(m["H"]), int(m["M"] or 0)
                if hour > 23 or minute > 59:
                    return None
                second = int(m["S"] or 0)
                if second > 59:
                    return None
                frac = m["f"] or ""
                micro = int((frac + "000000")[:6]) if frac else 0
                start = start.replace(hour=hour, minute=minute, second=second, microsecond=micro)
                start -= offset
                if m["S"] is None:
                    end = start + timedelta(minutes=1)
                elif frac and len(frac) < 3:
                    end = start + timedelta(milliseconds=10 ** (3 - len(frac)))
                elif frac:
                    end = start + timedelta(milliseconds=1)
                else:
                    end = start + timedelta(seconds=1)
        low = _ms(start)
        high = _ms(end) - 1 if end is not None else MAX_MS
    except (ValueError, OverflowError):
        return None
    if not MIN_MS <= low <= high <= MAX_MS:
        return None
    return low, high


def decimal_value(text: str) -> Decimal | None:
    """A search number as Decimal (keeps the precision the client wrote)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def precision_range(value: Decimal) -> tuple[float, float]:
    """The half-open interval a number written with this precision stands for."""
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    return float(value - half), float(value + half)


# UCUM: a few unit families converted to one canonical unit (value * factor).
_UCUM_PREFIX = {"": 1.0, "k": 1e3, "d": 1e-1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_UCUM_BASE = {"g": "g", "L": "L", "l": "L", "m": "m", "mol": "mol", "s": "s"}
_UCUM_SPECIAL = {
    "min": (60.0, "s"),
    "h": (3600.0, "s"),
    "d": (86400.0, "s"),
    "wk": (604800.0, "s"),
    "[lb_av]": (453.59237, "g"),
    "[in_i]": (0.0254, "m"),
    "[ft_i]": (0.3048, "m"),
    "%": (0.01, "1"),
}
UCUM = "http://unitsofmeasure.org"


def _simple_unit(code: str) -> tuple[float, str] | None:
    if code in _UCUM_SPECIAL:
        return _UCUM_SPECIAL[code]
    for base in sorted(_UCUM_BASE, key=len, reverse=True):
        if code.endswith(base):
            prefix = code[: -len(base)]
            if prefix in _UCUM_PREFIX:
                return _UCUM_PREFIX[prefix], _UCUM_BASE[base]
    return None


def ucum_canonical(value: float, code: str) -> tuple[float, str] | None:
    """(value, unit) in canonical UCUM units for simple and ``a/b`` units, else None."""
    if "/" in code:
        top, _, bottom = code.partition("/")
        num, den = _simple_unit(top), _simple_unit(bottom)
        if num is None or den is None:
            return None
        return value * num[0] / den[0], f"{num[1]}/{den[1]}"
    unit = _simple_unit(code)
    if unit is None:
        return None
    return value * unit[0], unit[1]
