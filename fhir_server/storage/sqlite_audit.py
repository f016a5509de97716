"""The audit chain in SQLite: an append-only table guarded by triggers, sealed at commit.

Records are sealed inside the writer's transaction, right after reading the chain head,
so the chain order is the commit order, even with several processes on one file.
Audit-only batches reach the chain through the journal (``sqlite_journal``).
AuditEvents become searchable resources later, in large batches (``index_audit``), in a
file of their own (``sqlite_audit_index``): the durable, chained row is what makes an
access accounted for; the search index is a derived view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead, seal_batch
from audit.events import fhir_instant
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import StoreError, StoreUnavailable
from fhir_server.storage.sqlite_audit_index import as_bytes
from fhir_server.storage.sqlite_engine import SqliteEngine, mapped_errors
from fhir_server.storage.sqlite_journal import AuditJournal, orphans
from fhir_server.storage.sqlite_search_sql import AUDIT_INDEX_DB

log = logging.getLogger("medicore.audit")
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


def chain_moved(conn: sqlite3.Connection, events: Sequence[dict[str, Any]], *, key: bytes) -> None:
    """Seal journaled ``events`` into the chain, except those a move already chained."""
    marks = ",".join("?" * len(events))
    chained = {
        row[0]
        for row in conn.execute(
            f"SELECT event_id FROM audit WHERE event_id IN ({marks})", [e["id"] for e in events]
        )
    }
    fresh = [e for e in events if e["id"] not in chained]
    if fresh:
        append(conn, fresh, key=key)


def _report_failed_move(task: asyncio.Task[None]) -> None:
    """One log line; the rows stay in the journal and the next audit commit tries again."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("journaled AuditEvents not chained yet: %s", exc)


class SqliteAuditSink(SqliteEngine):
    """``audit.sink.AuditSink`` on the store's file, plus indexing for search.

    Audit-only batches go to the journal (``sqlite_journal``) and are chained from there
    by a task of this process; everything that reads the chain first waits for that task,
    so a process always finds its own events chained.
    """

    _journal: AuditJournal | None = None
    _mover: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await super().open()
        journal = AuditJournal.own(self.path)
        with mapped_errors():
            await journal.open()
        self._journal = journal
        for orphan in orphans(self.path):  # rows of processes that died
            try:
                with mapped_errors():
                    await orphan.open()
                await self._move_all(orphan)
            except StoreError as exc:  # e.g. full: kept for a later open; reads go on
                log.warning("a dead process's audit journal is not chained yet: %s", exc)
                await orphan.close()
                continue
            await orphan.close(remove=True)

    async def close(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            chained = False
            with contextlib.suppress(StoreError):  # else kept for the next open
                await self._settle()
                await self._move_all(journal)
                chained = True
            await journal.close(remove=chained)
        await super().close()

    async def journal_audit(self, events: list[dict[str, Any]]) -> None:
        """Durable audit-only ``events``, chained soon after (see the class)."""
        journal = self._journal
        if journal is None:
            raise StoreUnavailable("the SQLite store is not open")
        with mapped_errors():
            await journal.append(events, guard=self._check_file)
        if self._mover is None or self._mover.done():
            self._mover = asyncio.create_task(self._move_all(journal))
            self._mover.add_done_callback(_report_failed_move)

    async def chain_journal(self) -> None:
        """Return once every event this process journaled so far is chained."""
        if self._journal is not None:
            await self._settle()
            await self._move_all(self._journal)

    async def _settle(self) -> None:
        mover = self._mover
        if mover is not None and not mover.done():
            with contextlib.suppress(StoreError):
                await asyncio.shield(mover)

    async def _move_all(self, journal: AuditJournal) -> None:
        while await self._move(journal):
            pass

    async def _move(self, journal: AuditJournal) -> bool:
        """Chain one batch of journaled events; False once there was nothing left."""
        with mapped_errors():
            pending = await journal.pending()
        if not pending.seqs:
            return False
        key = self.audit_key
        await self._write(lambda conn: chain_moved(conn, pending.events, key=key), audit_only=True)
        with mapped_errors():
            await journal.forget(pending.seqs)
        return True

    async def audit_head(self) -> ChainHead:
        await self.chain_journal()
        return await self._read(head)

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        await self.chain_journal()
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
        await self.chain_journal()
        return await self._read(
            lambda conn: bounds(conn, since=fhir_instant(since), until=fhir_instant(until))
        )

    async def audit_backlog(self) -> int:
        def fetch(conn: sqlite3.Connection) -> int:
            recorded = head(conn).position
            row = conn.execute(f"SELECT position FROM {AUDIT_INDEX_DB}.indexed").fetchone()
            return max(0, recorded - (row[0] if row else 0))

        await self.chain_journal()
        return await self._read(fetch)

    async def index_audit(
        self, *, registry: SearchRegistry, limit: int = 1000, upto: int | None = None
    ) -> int:
        """Make recorded AuditEvents searchable; returns how many were indexed."""
        await self.chain_journal()
        index = self.audit_index
        with mapped_errors():
            return await asyncio.to_thread(index.index_chunk, registry, limit=limit, upto=upto)
