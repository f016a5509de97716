"""Server-assigned ids: RFC 9562 version 7 UUIDs, time-ordered across milliseconds."""

from __future__ import annotations

import time
import uuid

from fhir_server.resources.meta import is_valid_id, new_id


def test_ids_are_version_7_uuids_carrying_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after
    assert is_valid_id(value)


def test_ids_made_later_sort_after_earlier_ones_and_never_repeat() -> None:
    first = [new_id() for _ in range(1000)]
    time.sleep(0.002)
    second = [new_id() for _ in range(1000)]
    assert max(first) < min(second)
    assert len(set(first + second)) == 2000
