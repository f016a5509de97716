"""The audit chain in SQLite: an append-only table guarded by triggers, sealed at commit.

Records are sealed inside the writer's transaction, right after reading the chain head,
so the chain order is the commit order even with several processes on one file.
AuditEvents become searchable resources later, in large batches (``index_audit``): the
durable, chained row is what makes an access accounted for; indexing is a derived view,
and a thousand events indexed in one commit cost half what ten-event commits would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead, seal_batch
from audit.events import fhir_instant
from audit.sink import check_follows
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import sqlite_search
from fhir_server.storage.audit_view import audit_event_write
from fhir_server.storage.base import VersionWrite
from fhir_server.storage.sqlite_engine import SqliteEngine


def head(conn: sqlite3.Connection) -> ChainHead:
    row = conn.execute("SELECT position, hash FROM audit ORDER BY position DESC LIMIT 1").fetchone()
    return ChainHead(row[0], row[1]) if row else EMPTY_HEAD


def append(conn: sqlite3.Connection, events: Sequence[dict[str, Any]], *, key: bytes) -> None:
    """Seal ``events`` after the current head and insert them (inside the caller's tx)."""
    records = seal_batch(events, head=head(conn), key=key)
    conn.executemany(
        "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (r.position, e["id"], e["recorded"], r.prev_hash, r.hash, r.event_json)
            for r, e in zip(records, events, strict=True)
        ],
    )


def insert_views(conn: sqlite3.Connection, views: Sequence[VersionWrite]) -> None:
    """AuditEvent resources and their index rows, a statement per table for them all."""
    first: int = conn.execute("SELECT coalesce(max(rid), 0) + 1 FROM resource").fetchone()[0]
    rids = range(first, first + len(views))
    conn.executemany(
        "INSERT INTO resource (rid, rtype, id, version, last_updated, deleted, body)"
        " VALUES (?, 'AuditEvent', ?, 1, ?, 0, ?)",
        [(rid, v.id, v.last_updated, v.body) for rid, v in zip(rids, views, strict=True)],
    )
    sqlite_search.write_indexes(
        conn,
        [(rid, "AuditEvent", v.index) for rid, v in zip(rids, views, strict=True) if v.index],
    )


def _mark_indexed(conn: sqlite3.Connection, upto: int) -> None:
    conn.execute(
        "INSERT INTO audit_indexed (id, upto) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET upto=excluded.upto",
        (upto,),
    )


def rows(
    conn: sqlite3.Connection, *, start: int, stop: int | None, limit: int
) -> list[ChainedRecord]:
    sql = "SELECT position, prev_hash, hash, event FROM audit WHERE position>=?"
    args: list[Any] = [start]
    if stop is not None:
        sql += " AND position<=?"
        args.append(stop)
    sql += " ORDER BY position LIMIT ?"
    return [
        ChainedRecord(position=p, prev_hash=prev, hash=h, event_json=_as_bytes(event))
        for p, prev, h, event in conn.execute(sql, (*args, limit))
    ]


def _as_bytes(value: bytes | str) -> bytes:
    """Event JSON as stored; text too, so a forged row is reported, not crashed on."""
    return value.encode() if isinstance(value, str) else bytes(value)


def bounds(conn: sqlite3.Connection, *, since: str, until: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT min(position), max(position) FROM audit WHERE recorded>=? AND recorded<?",
        (since, until),
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def indexed_upto(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT upto FROM audit_indexed WHERE id=1").fetchone()
    return int(row[0]) if row else 0


def pending(conn: sqlite3.Connection, *, limit: int) -> list[tuple[int, str, str, bytes]]:
    """(position, event id, recorded, event JSON) not yet indexed, oldest first."""
    return [
        (p, event_id, recorded, _as_bytes(event))
        for p, event_id, recorded, event in conn.execute(
            "SELECT position, event_id, recorded, event FROM audit WHERE position>?"
            " ORDER BY position LIMIT ?",
            (indexed_upto(conn), limit),
        )
    ]


class SqliteAuditSink(SqliteEngine):
    """``audit.sink.AuditSink`` on the store's file, plus background indexing."""

    async def audit_head(self) -> ChainHead:
        return await self._read(head)

    async def append_audit(self, records: Sequence[ChainedRecord]) -> None:
        def insert_sealed(conn: sqlite3.Connection) -> None:
            check_follows(head(conn), records)
            conn.executemany(
                "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.position, r.event()["id"], r.recorded(), r.prev_hash, r.hash, r.event_json)
                    for r in records
                ],
            )

        await self._write(insert_sealed)

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

    async def index_audit(self, *, registry: SearchRegistry, limit: int = 1000) -> int:
        """Make recorded AuditEvents searchable; returns how many were indexed."""
        waiting = await self._read(lambda conn: pending(conn, limit=limit))
        if not waiting:
            return 0
        prepared = [
            audit_event_write(event_id, recorded, event, registry=registry)
            for _, event_id, recorded, event in waiting
        ]
        upto = waiting[-1][0]

        def insert(conn: sqlite3.Connection) -> None:
            if indexed_upto(conn) >= upto:
                return  # another process indexed them meanwhile
            marks = ",".join("?" * len(prepared))
            indexed = {
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM resource WHERE rtype='AuditEvent' AND id IN ({marks})",
                    [write.id for write in prepared],
                )
            }
            insert_views(conn, [write for write in prepared if write.id not in indexed])
            _mark_indexed(conn, upto)

        await self._write(insert)
        return len(waiting)
