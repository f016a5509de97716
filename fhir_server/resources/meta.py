"""Server-owned parts of a stored resource: ids, versions, timestamps, JSON bytes."""

from __future__ import annotations

import os
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_server.resources import exact_json

# The resource types clients may write, and the ones they may only read.
WRITABLE_TYPES: tuple[str, ...] = (
    "Patient",
    "Encounter",
    "MedicationRequest",
    "Observation",
    "Provenance",
)
READ_ONLY_TYPES: tuple[str, ...] = ("AuditEvent",)
SUPPORTED_TYPES: tuple[str, ...] = WRITABLE_TYPES + READ_ONLY_TYPES

_ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_valid_id(value: str) -> bool:
    return bool(_ID_PATTERN.match(value))


_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID: 48 bits of Unix milliseconds, then 74
    random bits. Ids made together sort together, so the unique indexes on ids grow at
    their right edge instead of dirtying a random page per insert (a random id costs a
    whole page in the WAL at every commit). Ids are not secrets, so a seeded PRNG serves:
    it never waits on the GIL in a system call in the middle of a write."""
    millis = time.time_ns() // 1_000_000 & _MILLIS_MASK
    rand = _ids.getrandbits(74)
    value = millis << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | rand & _RAND_B_MASK
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_MILLIS_MASK = (1 << 48) - 1
_RAND_B_MASK = (1 << 62) - 1


def now_instant() -> str:
    """The current time as a FHIR instant in UTC with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def normalize_instant(value: datetime) -> str:
    """Any aware datetime in the same text form as ``now_instant`` (for range compares)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def stamp(resource: dict[str, Any], *, resource_id: str, version: int, now: str) -> dict[str, Any]:
    """A copy of ``resource`` carrying the server's id, versionId and lastUpdated."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = now
    stamped: dict[str, Any] = {"resourceType": resource["resourceType"], "id": resource_id}
    stamped["meta"] = meta
    for key, value in resource.items():
        if key not in stamped:
            stamped[key] = value
    return stamped


def to_json(resource: dict[str, Any]) -> bytes:
    return exact_json.dumps(resource)


def from_json(body: bytes) -> dict[str, Any]:
    """A stored resource to reason about (decimals as floats: fast)."""
    value = orjson.loads(body)
    assert isinstance(value, dict)
    return value


def from_json_exact(body: bytes) -> dict[str, Any]:
    """A stored resource that will be written out again: decimals keep their digits."""
    value = exact_json.loads(body)
    assert isinstance(value, dict)
    return value


def http_date(instant: str) -> str:
    """An RFC 7231 date for ``Last-Modified`` from a stored FHIR instant."""
    moment = datetime.fromisoformat(instant)
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
