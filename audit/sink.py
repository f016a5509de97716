"""The contract a store fulfils to keep the audit chain, and an in-memory one for tests.

Both stores implement :class:`AuditSink` next to their ``Store`` methods (issue 6):

- the global order of the chain comes from the store, never from process memory:
  :meth:`AuditSink.append_audit` appends a sealed batch only if it starts right after
  the current head (SQLite: inside ``BEGIN IMMEDIATE``; MongoDB: a unique index on
  ``position`` plus a transaction) and raises :class:`ChainConflict` otherwise, so
  several workers or hosts can share one chain; :func:`append_events` re-reads the head
  and re-seals on conflict.
- a write and its AuditEvents commit together: a store's write path reads the head,
  calls :func:`audit.chain.seal_batch` and inserts the records in the same transaction
  as the resources, with the same conflict rule.
- records are never updated or deleted through this contract: there is no method for it.

Time ranges map to a *contiguous* run of positions (:meth:`AuditSink.audit_bounds`):
``recorded`` is stamped before a record is sealed, so with concurrent writers it is not
strictly monotonic in position, and a slice cut by time alone would have holes that
verification must report as removals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead, seal_batch

__all__ = [
    "AuditSink",
    "AuditUnavailable",
    "ChainConflict",
    "InMemoryAuditSink",
    "append_events",
    "check_follows",
    "iter_range",
    "parse_instant",
]


class AuditUnavailable(Exception):
    """The audit record could not be stored; the request must fail with 503."""


class ChainConflict(Exception):
    """Another writer extended the chain since this batch was sealed; re-seal and retry."""


@runtime_checkable
class AuditSink(Protocol):
    """Append-only, position-ordered storage of chained audit records."""

    async def audit_head(self) -> ChainHead:
        """The newest record's position and hash (``EMPTY_HEAD`` when empty)."""
        ...

    async def append_audit(self, records: Sequence[ChainedRecord]) -> None:
        """Appends all ``records`` atomically, or none.

        Raises :class:`ChainConflict` unless ``records[0]`` follows the current head
        (position = head + 1, prev_hash = head hash) and positions are consecutive;
        :class:`AuditUnavailable` when the store cannot take the write.
        """
        ...

    def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        """Records with ``start <= position <= stop`` (all from ``start`` if no stop), in order."""
        ...

    async def audit_bounds(self, *, since: datetime, until: datetime) -> tuple[int, int] | None:
        """Lowest and highest position recorded in ``[since, until)``, or None if none."""
        ...


def parse_instant(text: str) -> datetime:
    """A FHIR ``instant`` (``Z`` or offset) as an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("instant without a timezone")
    return moment


def check_follows(head: ChainHead, records: Sequence[ChainedRecord]) -> None:
    """Raise :class:`ChainConflict` unless ``records`` extend ``head`` without a gap."""
    prev_position, prev_hash = head.position, head.hash
    for record in records:
        if record.position != prev_position + 1 or record.prev_hash != prev_hash:
            raise ChainConflict(
                f"batch record at position {record.position} does not follow "
                f"position {prev_position}"
            )
        prev_position, prev_hash = record.position, record.hash


async def append_events(
    sink: AuditSink, events: Sequence[Any], *, key: bytes, attempts: int = 5
) -> list[ChainedRecord]:
    """Seals ``events`` after the sink's head and appends them, retrying on conflict."""
    if not events:
        return []
    for _ in range(attempts):
        head = await sink.audit_head()
        records = seal_batch(events, head=head, key=key)
        try:
            await sink.append_audit(records)
        except ChainConflict:
            continue
        return records
    raise AuditUnavailable(f"audit chain still contended after {attempts} attempts")


async def iter_range(
    sink: AuditSink, *, since: datetime, until: datetime
) -> AsyncIterator[ChainedRecord]:
    """The contiguous run of records covering everything recorded in ``[since, until)``."""
    bounds = await sink.audit_bounds(since=since, until=until)
    if bounds is None:
        return
    async for record in sink.iter_audit(start=bounds[0], stop=bounds[1]):
        yield record


class InMemoryAuditSink:
    """:class:`AuditSink` over a list, for tests; ``records`` is open to tampering."""

    def __init__(self, records: Sequence[ChainedRecord] = ()) -> None:
        self.records: list[ChainedRecord] = list(records)
        self.fail_appends = False

    def _head(self) -> ChainHead:
        if not self.records:
            return EMPTY_HEAD
        last = self.records[-1]
        return ChainHead(position=last.position, hash=last.hash)

    async def audit_head(self) -> ChainHead:
        return self._head()

    async def append_audit(self, records: Sequence[ChainedRecord]) -> None:
        if self.fail_appends:
            raise AuditUnavailable("in-memory audit sink set to fail")
        # No await between the check and the extend: atomic on one event loop.
        check_follows(self._head(), records)
        self.records.extend(records)

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        for record in list(self.records):
            if record.position >= start and (stop is None or record.position <= stop):
                yield record

    async def audit_bounds(self, *, since: datetime, until: datetime) -> tuple[int, int] | None:
        since_utc, until_utc = since.astimezone(UTC), until.astimezone(UTC)
        positions = [
            r.position for r in self.records if since_utc <= parse_instant(r.recorded()) < until_utc
        ]
        if not positions:
            return None
        return min(positions), max(positions)
