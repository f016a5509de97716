"""AuditEvents' search index in its own SQLite file, built from the audit chain.

Indexing an event costs more than recording it (about 14 index rows). Written into the
store's file, that work would contend for its one write lock with every request's audit
commit. In a file of its own it can run in another process, on the other core
(``medicore audit index --follow``, which ``medicore serve`` starts). Reader
connections attach this file as ``audit_index``, so searches join across both files.

The file is derived data: its watermark names the last indexed chain position and hash.
When the chain no longer has that record (a restore, another store file), the index is
emptied and rebuilt from the chain. Its commits need no fsync (``synchronous=NORMAL``)
for the same reason.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import sqlite_search
from fhir_server.storage.audit_view import audit_event_write
from fhir_server.storage.sqlite_schema import RESOURCE_SCHEMA
from fhir_server.storage.sqlite_search_sql import AUDIT_INDEX_DB

# AuditEvent rids are the chain position plus this, so a search spanning both files
# orders and pages by rid without collisions (main rids stay far below it).
RID_BASE = 1 << 48
_BUSY_TIMEOUT_MS = 10_000

# Every row here is an AuditEvent, so the token indexes that serve type-wide counts and
# system-only lookups in the store's file would only cost (a fifth of the index inserts).
_UNUSED_HERE = ("idx_token_count", "idx_token_s")
INDEX_SCHEMA: tuple[str, ...] = (
    *RESOURCE_SCHEMA,
    *(ddl for ddl in sqlite_search.SCHEMA if not any(f" {name} " in ddl for name in _UNUSED_HERE)),
    """CREATE TABLE IF NOT EXISTS indexed (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        position INTEGER NOT NULL,
        hash TEXT NOT NULL
    )""",
)


def index_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".audit-index")


def attach(conn: sqlite3.Connection, store_path: Path) -> None:
    """Make the index readable on ``conn`` as ``audit_index`` (reader connections only: a
    writer's ``BEGIN IMMEDIATE`` would lock every attached file)."""
    conn.execute(f"ATTACH DATABASE ? AS {AUDIT_INDEX_DB}", (str(index_path(store_path)),))


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return conn


class AuditIndexFile:
    """Brings the index file up to the chain's head, a chunk per call, from any process.

    Several indexers may share a file (the server catching up for an auditor while the
    indexer process runs): each chunk is decided and written under the file's write lock.
    """

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = index_path(store_path)
        self._lock = threading.Lock()
        self._chain: sqlite3.Connection | None = None
        self._index: sqlite3.Connection | None = None

    def create(self) -> None:
        """Create the file and its tables if missing (before readers attach it)."""
        with self._lock:
            self._open()

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self._chain is None or self._index is None:
            index = _connect(self.path)
            index.execute("PRAGMA journal_mode=WAL")
            index.execute("PRAGMA synchronous=NORMAL")
            for statement in INDEX_SCHEMA:
                index.execute(statement)
            chain = _connect(self.store_path)
            chain.execute("PRAGMA query_only=ON")
            self._chain, self._index = chain, index
        return self._chain, self._index

    def close(self) -> None:
        with self._lock:
            for conn in (self._chain, self._index):
                if conn is not None:
                    conn.close()
            self._chain = self._index = None

    def index_chunk(self, registry: SearchRegistry, *, limit: int = 1000) -> int:
        """Index the next ``limit`` chain records at most; returns how many were indexed."""
        with self._lock:
            chain, index = self._open()
            index.execute("BEGIN IMMEDIATE")
            try:
                count = _index_chunk(chain, index, registry, limit=limit)
                index.execute("COMMIT")
            except BaseException:
                index.execute("ROLLBACK")
                raise
            return count


def _index_chunk(
    chain: sqlite3.Connection, index: sqlite3.Connection, registry: SearchRegistry, *, limit: int
) -> int:
    row = index.execute("SELECT position, hash FROM indexed WHERE id=1").fetchone()
    position, expected_hash = row if row else (0, "")
    if position and not _chain_has(chain, position, expected_hash):
        _empty(index)  # the chain was replaced (restore): rebuild from its start
        position = 0
    pending = chain.execute(
        "SELECT position, event_id, recorded, hash, event FROM audit WHERE position>?"
        " ORDER BY position LIMIT ?",
        (position, limit),
    ).fetchall()
    if not pending:
        return 0
    views = [
        audit_event_write(event_id, recorded, as_bytes(event), registry=registry)
        for _, event_id, recorded, _, event in pending
    ]
    rids = [RID_BASE + p for p, *_ in pending]
    index.executemany(
        "INSERT INTO resource (rid, rtype, id, version, last_updated, deleted, body)"
        " VALUES (?, 'AuditEvent', ?, 1, ?, 0, ?)",
        [(rid, v.id, v.last_updated, v.body) for rid, v in zip(rids, views, strict=True)],
    )
    sqlite_search.write_indexes(
        index,
        [(rid, "AuditEvent", v.index) for rid, v in zip(rids, views, strict=True) if v.index],
    )
    last_position, last_hash = pending[-1][0], pending[-1][3]
    index.execute(
        "INSERT INTO indexed (id, position, hash) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET position=excluded.position, hash=excluded.hash",
        (last_position, last_hash),
    )
    return len(pending)


def _chain_has(chain: sqlite3.Connection, position: int, record_hash: str) -> bool:
    row = chain.execute("SELECT hash FROM audit WHERE position=?", (position,)).fetchone()
    return row is not None and row[0] == record_hash


def _empty(index: sqlite3.Connection) -> None:
    for table in ("resource", *sqlite_search.TABLES, "indexed"):
        index.execute(f"DELETE FROM {table}")


def as_bytes(value: bytes | str) -> bytes:
    """Event JSON as stored; text too, so a forged row is reported, not crashed on."""
    return value.encode() if isinstance(value, str) else bytes(value)
