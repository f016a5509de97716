"""How the chain tools read a store's audit chain, and an in-memory chain for tests.

Both stores implement :class:`AuditSink` next to their ``Store`` methods (issue 6); the
chain tools (``medicore audit verify|export|checkpoint``) need nothing else. Records are
written only through ``Store.commit`` (``WriteBatch.audit``): the store reads the head,
seals with :func:`audit.chain.seal_batch` and inserts in the same transaction as the
data, so the global order of the chain comes from the store, never from process memory
(SQLite: the writer's lock, or an insert guarded by the expected head; MongoDB: a unique
index on ``position``). Nothing updates or deletes a record: there is no method for it.

Time ranges map to a *contiguous* run of positions (:meth:`AuditSink.audit_bounds`):
``recorded`` is stamped before a record is sealed, so with concurrent writers it is not
strictly monotonic in position, and a slice cut by time alone would have holes that
verification must report as removals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead

__all__ = ["AuditSink", "InMemoryAuditSink", "parse_instant"]


@runtime_checkable
class AuditSink(Protocol):
    """A store's append-only chain of audit records, read in position order."""

    async def audit_head(self) -> ChainHead:
        """The newest record's position and hash (``EMPTY_HEAD`` when empty)."""
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


class InMemoryAuditSink:
    """:class:`AuditSink` over sealed records, for tests; ``records`` is open to tampering."""

    def __init__(self, records: Sequence[ChainedRecord] = ()) -> None:
        self.records: list[ChainedRecord] = list(records)

    async def audit_head(self) -> ChainHead:
        if not self.records:
            return EMPTY_HEAD
        last = self.records[-1]
        return ChainHead(position=last.position, hash=last.hash)

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        for record in list(self.records):
            if record.position >= start and (stop is None or record.position <= stop):
                yield record

    async def audit_bounds(self, *, since: datetime, until: datetime) -> tuple[int, int] | None:
        since_utc, until_utc = since.astimezone(UTC), until.astimezone(UTC)
        positions = [
            r.position
            for r in self.records
            if since_utc <= parse_instant(r.recorded_instant()) < until_utc
        ]
        if not positions:
            return None
        return min(positions), max(positions)
