"""JSON that keeps each decimal's digits.

FHIR gives a decimal's precision meaning (``0.010`` is not ``0.01``: "the original
precision should be preserved"), but a float keeps only the value, so ``36.50`` would come
back as ``36.5`` and ``1.0e1`` as ``10.0``. Decimals whose shortest float form differs from
how they were written are parsed as :class:`ExactDecimal`, a float (so every check and
comparison works unchanged) that remembers its text and is written back as that text.

The exact parse costs about three orjson parses, so it is used where a resource is
written or re-serialized (client bodies, patches, subsetted and Bundle-embedded reads);
decisions about a stored resource (access, audit) use plain ``meta.from_json``, and a
stored body sent as it is goes out as its own bytes (``orjson.Fragment``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_INT64 = (-(2**63), 2**63)


class ExactDecimal(float):
    """A JSON number as written (``text``), valued as the float it stands for."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ExactDecimal:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __reduce__(self) -> tuple[type[ExactDecimal], tuple[str]]:
        return ExactDecimal, (self.text,)


def _integer(text: str) -> int | ExactDecimal:
    number = int(text)
    return number if _INT64[0] <= number < _INT64[1] else ExactDecimal(text)


def loads(data: bytes) -> Any:
    """Parse ``data``; raises ``orjson.JSONDecodeError`` (with its position) on bad JSON."""
    orjson.loads(data)  # validates strictly (UTF-8, surrogates, no NaN): stdlib json does not
    return json.loads(data, parse_float=ExactDecimal, parse_int=_integer)


def _as_written(value: Any) -> Any:
    if isinstance(value, ExactDecimal):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """``orjson.dumps`` writing each :class:`ExactDecimal` with its own digits."""
    return orjson.dumps(value, default=_as_written)
