"""The audit chain in SQLite: an append-only table guarded by triggers, sealed at commit.

Records are sealed inside the writer's transaction, right after reading the chain head,
so the chain order is the commit order even with several processes on one file.
AuditEvents become searchable resources later, in batches (``index_pending``): the
durable, chained row is what makes an access accounted for; indexing is a derived view.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead, seal_batch

AUDIT_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS audit (
        position INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        recorded TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        event BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_recorded ON audit (recorded)",
    """CREATE TABLE IF NOT EXISTS audit_indexed (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        upto INTEGER NOT NULL
    )""",
    # No code path changes an audit record; these make the database refuse it too.
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_resource_no_update BEFORE UPDATE ON resource
        WHEN OLD.rtype = 'AuditEvent'
        BEGIN SELECT RAISE(ABORT, 'AuditEvent resources are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_resource_no_delete BEFORE DELETE ON resource
        WHEN OLD.rtype = 'AuditEvent'
        BEGIN SELECT RAISE(ABORT, 'AuditEvent resources are append-only'); END""",
)


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


def event_body(event_json: bytes) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(event_json)
    return body
