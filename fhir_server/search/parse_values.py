"""Parsing of one parameter's value by type (prefixes, precision, escapes) into query values."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import tzinfo

from fhir_server.search.errors import SearchError
from fhir_server.search.normalize import (
    UCUM,
    date_range,
    decimal_value,
    exact,
    fold,
    precision_range,
    ucum_canonical,
)
from fhir_server.search.query import (
    DateValue,
    NumberValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash, then unescape ``\\, \\| \\$ \\\\``."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ",|$\\":
            current.append("\\" + text[i + 1])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def split_prefix(text: str) -> tuple[str, str]:
    if len(text) > 2 and text[:2] in PREFIXES and not text[2].isalpha():
        return text[:2], text[2:]
    return "eq", text


def parse_token(param: str, text: str) -> TokenValue:
    parts = split_escaped(text, "|")
    if len(parts) == 1:
        if not parts[0]:
            raise SearchError(param, "empty token")
        return TokenValue(system=None, code=unescape(parts[0]))
    if len(parts) != 2:
        raise SearchError(param, "a token is [system|]code")
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise SearchError(param, "empty token")
    return TokenValue(system=system, code=code or None)


def parse_string(param: str, text: str, modifier: str) -> StringValue:
    value = unescape(text)
    if modifier == "exact":
        return StringValue(mode="exact", value=exact(value))
    if not fold(value):
        raise SearchError(param, "empty string")
    return StringValue(mode="contains" if modifier == "contains" else "start", value=fold(value))


_DAY_MS = 86_400_000


def parse_date(
    param: str,
    text: str,
    *,
    zone: tzinfo | None = None,
    clock: Callable[[], float] = time.time,
) -> DateValue:
    """A date search value; without an offset it is the wall clock of ``zone`` (None: UTC).

    ``ap`` reaches 10% of the gap between now (``clock``) and the value, at least a day
    (the spec's recommendation), so "now" is read once, here, and both stores agree.
    """
    prefix, rest = split_prefix(text)
    rng = date_range(rest, zone)
    if rng is None:
        raise SearchError(param, "not a valid FHIR date/dateTime")
    margin = 0
    if prefix == "ap":
        margin = max(abs(int(clock() * 1000) - rng[0]) // 10, _DAY_MS)
    return DateValue(prefix=prefix, low=rng[0], high=rng[1], margin=margin)


def parse_number(param: str, text: str, *, quantity: bool) -> NumberValue:
    parts = split_escaped(text, "|")
    prefix, number = split_prefix(parts[0])
    value = decimal_value(number)
    if value is None:
        raise SearchError(param, "not a valid number")
    low, high = precision_range(value)
    if not quantity:
        if len(parts) != 1:
            raise SearchError(param, "a number takes no unit")
        return NumberValue(prefix=prefix, value=float(value), low=low, high=high)
    if len(parts) == 1:
        return NumberValue(prefix=prefix, value=float(value), low=low, high=high)
    if len(parts) != 3:
        raise SearchError(param, "a quantity is [prefix]number|system|code")
    system, code = unescape(parts[1]) or None, unescape(parts[2]) or None
    return NumberValue(
        prefix=prefix, value=float(value), low=low, high=high, system=system, code=code
    )


def canonical_number(value: NumberValue) -> NumberValue | None:
    """The same comparison in canonical UCUM units, when the unit converts."""
    if value.system != UCUM or value.code is None:
        return None
    unit = ucum_canonical(1.0, value.code)
    if unit is None:
        return None
    factor, code = unit
    return NumberValue(
        prefix=value.prefix,
        value=value.value * factor,
        low=value.low * factor,
        high=value.high * factor,
        system=UCUM,
        code=code,
    )


def parse_reference(
    param: str, text: str, *, type_modifier: str | None, targets: tuple[str, ...], base_url: str
) -> list[ReferenceValue]:
    value = unescape(text).strip()
    if not value:
        raise SearchError(param, "empty reference")
    base = base_url.rstrip("/") + "/"
    if base_url and value.startswith(base):
        value = value[len(base) :]
    if "://" in value or value.startswith("urn:"):
        return [ReferenceValue(type="", id=value.split("|")[0])]
    parts = value.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2 and all(parts):
        if type_modifier and parts[0] != type_modifier:
            raise SearchError(param, "reference type does not match the type modifier")
        return [ReferenceValue(type=parts[0], id=parts[1])]
    if len(parts) != 1:
        raise SearchError(param, "a reference is [type/]id or an absolute URL")
    if type_modifier:
        return [ReferenceValue(type=type_modifier, id=value)]
    if len(targets) == 1:
        return [ReferenceValue(type=targets[0], id=value)]
    return [ReferenceValue(type=None, id=value)]


def parse_uri(param: str, text: str, modifier: str) -> UriValue:
    value = unescape(text)
    if not value:
        raise SearchError(param, "empty uri")
    return UriValue(mode=modifier if modifier in ("below", "above") else "eq", value=value)
