"""The audit chain in SQLite: an append-only table guarded by triggers, sealed at commit.

Records are sealed inside the writer's transaction, right after reading the chain head,
or (audit-only commits) after the head the last append left, inserted only if that is
still the head; either way the chain order is the commit order, even with several
processes on one file.
AuditEvents become searchable resources later, in large batches (``index_audit``), in a
file of their own (``sqlite_audit_index``): the durable, chained row is what makes an
access accounted for; the search index is a derived view.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead, seal_batch
from audit.events import fhir_instant
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import StoreUnavailable
from fhir_server.storage.sqlite_audit_index import as_bytes
from fhir_server.storage.sqlite_engine import SqliteEngine, mapped_errors
from fhir_server.storage.sqlite_search_sql import AUDIT_INDEX_DB

ALONE_LIMIT = 500  # events one statement appends: 3,501 bound values (limit: 32,766)
_ALONE_ATTEMPTS = 20  # other processes appending in between: seal again, this many times
# Every column of a record; ``audit.layout`` says what its hash covers.
_COLUMNS = "(position, event_id, recorded, prev_hash, hash, event, layout)"
_ROW = "(?,?,?,?,?,?,?)"


def head(conn: sqlite3.Connection) -> ChainHead:
    """The newest record; a hash that is not text (a forged row) is sealed after as text."""
    row = conn.execute("SELECT position, hash FROM audit ORDER BY position DESC LIMIT 1").fetchone()
    return ChainHead(row[0], str(row[1])) if row else EMPTY_HEAD


def append(conn: sqlite3.Connection, events: Sequence[dict[str, Any]], *, key: bytes) -> ChainHead:
    """Seal ``events`` after the current head and insert them (inside the caller's tx)."""
    records = seal_batch(events, head=head(conn), key=key)
    conn.executemany(f"INSERT INTO audit {_COLUMNS} VALUES {_ROW}", _rows(records))
    return _last(records)


def append_alone(
    conn: sqlite3.Connection,
    events: Sequence[dict[str, Any]],
    *,
    key: bytes,
    known_head: ChainHead | None,
) -> ChainHead:
    """Seal and insert up to ``ALONE_LIMIT`` events in one autocommitted statement.

    Audit-only commits (every read's) are most of the writer's work. Run outside
    BEGIN ... COMMIT, one statement takes the write lock, inserts, and syncs, so the writer
    thread waits once for the GIL instead of at each of six statements. Sealed after
    ``known_head`` (the last append's), the rows go in only if that is still the head;
    if another process appended meanwhile, the head is read and the events sealed again.
    """
    current = known_head or head(conn)
    for _ in range(_ALONE_ATTEMPTS):
        records = seal_batch(events, head=current, key=key)
        values = ",".join([_ROW] * len(records))
        expected = f"{current.position} {current.hash}" if current.position else ""
        inserted = conn.execute(
            f"INSERT INTO audit {_COLUMNS} SELECT * FROM (VALUES {values}) WHERE coalesce("
            "(SELECT position || ' ' || hash FROM audit ORDER BY position DESC LIMIT 1), '') = ?",
            [*(v for row in _rows(records) for v in row), expected],
        ).rowcount
        if inserted == len(records):
            return _last(records)
        current = head(conn)
    # A head that never compares equal (a forged row) must not hold the writer forever.
    raise StoreUnavailable("the audit chain head cannot be extended")


def _rows(records: list[ChainedRecord]) -> list[tuple[Any, ...]]:
    """The columns exactly as sealed: what is stored is what the hash covers."""
    return [
        (r.position, r.event_id, r.recorded, r.prev_hash, r.hash, r.event_json, r.layout)
        for r in records
    ]


def _last(records: list[ChainedRecord]) -> ChainHead:
    return ChainHead(records[-1].position, records[-1].hash)


def rows(
    conn: sqlite3.Connection, *, start: int, stop: int | None, limit: int
) -> list[ChainedRecord]:
    sql = (
        "SELECT position, prev_hash, hash, event, event_id, recorded, layout"
        " FROM audit WHERE position>=?"
    )
    args: list[Any] = [start]
    if stop is not None:
        sql += " AND position<=?"
        args.append(stop)
    sql += " ORDER BY position LIMIT ?"
    return [
        ChainedRecord(
            position=p,
            prev_hash=prev,
            hash=h,
            event_json=as_bytes(event),
            event_id=event_id,
            recorded=recorded,
            layout=layout,
        )
        for p, prev, h, event, event_id, recorded, layout in conn.execute(sql, (*args, limit))
    ]


def bounds(conn: sqlite3.Connection, *, since: str, until: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT min(position), max(position) FROM audit WHERE recorded>=? AND recorded<?",
        (since, until),
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


class SqliteAuditSink(SqliteEngine):
    """``audit.sink.AuditSink`` on the store's file, plus indexing for search."""

    async def audit_head(self) -> ChainHead:
        return await self._read(head)

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        position = start
        while True:

            def fetch(conn: sqlite3.Connection, first: int = position) -> list[ChainedRecord]:
                return rows(conn, start=first, stop=stop, limit=1000)

            page = await self._read(fetch)
            for record in page:
                yield record
            if len(page) < 1000:
                return
            position = page[-1].position + 1

    async def audit_bounds(self, *, since: datetime, until: datetime) -> tuple[int, int] | None:
        return await self._read(
            lambda conn: bounds(conn, since=fhir_instant(since), until=fhir_instant(until))
        )

    async def audit_backlog(self) -> int:
        def fetch(conn: sqlite3.Connection) -> int:
            recorded = head(conn).position
            row = conn.execute(f"SELECT position FROM {AUDIT_INDEX_DB}.indexed").fetchone()
            return max(0, recorded - (row[0] if row else 0))

        return await self._read(fetch)

    async def index_audit(
        self, *, registry: SearchRegistry, limit: int = 1000, upto: int | None = None
    ) -> int:
        """Make recorded AuditEvents searchable; returns how many were indexed."""
        index = self.audit_index
        with mapped_errors():
            return await asyncio.to_thread(index.index_chunk, registry, limit=limit, upto=upto)
