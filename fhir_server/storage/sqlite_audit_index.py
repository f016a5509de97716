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

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import sqlite_search
from fhir_server.storage.audit_view import readable_write
from fhir_server.storage.base import VersionWrite
from fhir_server.storage.sqlite_files import connect, truncate_wal
from fhir_server.storage.sqlite_schema import RESOURCE_SCHEMA
from fhir_server.storage.sqlite_search_sql import AUDIT_INDEX_DB

# AuditEvent rids are the chain position plus this, so a search spanning both files
# orders and pages by rid without collisions (main rids stay far below it).
RID_BASE = 1 << 48
_MAX_POSITION = 2**63 - 1
log = logging.getLogger("medicore.audit")

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
            index = connect(self.path)
            index.execute("PRAGMA journal_mode=WAL")
            index.execute("PRAGMA synchronous=NORMAL")
            for statement in INDEX_SCHEMA:
                index.execute(statement)
            chain = connect(self.store_path)
            chain.execute("PRAGMA query_only=ON")
            self._chain, self._index = chain, index
        return self._chain, self._index

    def close(self) -> None:
        with self._lock:
            for conn in (self._chain, self._index):
                if conn is not None:
                    conn.close()
            self._chain = self._index = None

    def index_chunk(
        self, registry: SearchRegistry, *, limit: int = 1000, upto: int | None = None
    ) -> int:
        """Index the next ``limit`` chain records at most (none past position ``upto``);
        returns how many were indexed.

        The records are turned into resources and index rows before the file's write lock
        is taken (the CPU-heavy part), then written if no other indexer moved the
        watermark meanwhile; if one did, the chunk is prepared again from there.
        """
        with self._lock:
            chain, index = self._open()
            while True:
                mark = _watermark(index)
                rebuild = mark.position > 0 and not _chain_has(chain, mark)
                after = 0 if rebuild else mark.position
                chunk = _Chunk.read(chain, after=after, upto=upto, limit=limit)
                if not chunk.positions and not rebuild:
                    return 0
                chunk.prepare(registry)
                index.execute("BEGIN IMMEDIATE")
                try:
                    if _watermark(index) != mark:
                        index.execute("ROLLBACK")
                        continue
                    if rebuild:
                        _empty(index)  # the chain was replaced (restore): rebuild from its start
                    chunk.write(index)
                    index.execute("COMMIT")
                except BaseException:
                    index.execute("ROLLBACK")
                    raise
                truncate_wal(index, self.path)  # readers held on: the next chunk tries again
                return len(chunk.positions)


@dataclass(frozen=True, slots=True)
class _Mark:
    position: int
    hash: str


def _watermark(index: sqlite3.Connection) -> _Mark:
    row = index.execute("SELECT position, hash FROM indexed WHERE id=1").fetchone()
    return _Mark(row[0], row[1]) if row else _Mark(0, "")


@dataclass(slots=True)
class _Chunk:
    """Chain records after a position, then the resources and index rows made from them."""

    positions: list[int]
    records: list[tuple[str, str, bytes]]  # (event id, recorded, event JSON)
    last: _Mark
    views: list[tuple[int, VersionWrite]] = field(default_factory=list)

    @classmethod
    def read(cls, chain: sqlite3.Connection, *, after: int, upto: int | None, limit: int) -> _Chunk:
        rows = chain.execute(
            "SELECT position, event_id, recorded, hash, event FROM audit"
            " WHERE position>? AND position<=? ORDER BY position LIMIT ?",
            (after, _MAX_POSITION if upto is None else upto, limit),
        ).fetchall()
        last = _Mark(rows[-1][0], rows[-1][3]) if rows else _Mark(after, "")
        return cls([r[0] for r in rows], [(r[1], r[2], as_bytes(r[4])) for r in rows], last)

    def prepare(self, registry: SearchRegistry) -> None:
        for position, (event_id, recorded, event) in zip(self.positions, self.records, strict=True):
            view = readable_write(position, event_id, recorded, event, registry=registry)
            if view is not None:
                self.views.append((RID_BASE + position, view))

    def write(self, index: sqlite3.Connection) -> None:
        index.executemany(
            "INSERT INTO resource (rid, rtype, id, version, last_updated, deleted, body)"
            " VALUES (?, 'AuditEvent', ?, 1, ?, 0, ?)",
            [(rid, v.id, v.last_updated, v.body) for rid, v in self.views],
        )
        sqlite_search.write_indexes(
            index, [(rid, "AuditEvent", v.index) for rid, v in self.views if v.index]
        )
        index.execute(
            "INSERT INTO indexed (id, position, hash) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET position=excluded.position, hash=excluded.hash",
            (self.last.position, self.last.hash),
        )


def _chain_has(chain: sqlite3.Connection, mark: _Mark) -> bool:
    row = chain.execute("SELECT hash FROM audit WHERE position=?", (mark.position,)).fetchone()
    return row is not None and row[0] == mark.hash


def _empty(index: sqlite3.Connection) -> None:
    for table in ("resource", *sqlite_search.TABLES, "indexed"):
        index.execute(f"DELETE FROM {table}")


def as_bytes(value: bytes | str) -> bytes:
    """Event JSON as stored; text too, so a forged row is reported, not crashed on."""
    return value.encode() if isinstance(value, str) else bytes(value)
