"""Embedded store: one SQLite file in WAL mode (see ``sqlite_engine`` for the threads).

``SqliteStore`` is the ``Store`` contract: resources, versions and search here; records
in ``sqlite_records``; the audit chain in ``sqlite_audit``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhir_server.storage import sqlite_audit, sqlite_search
from fhir_server.storage.base import (
    ConditionalClaim,
    ConditionalConflict,
    HistoryPage,
    SearchResult,
    StoredResource,
    VersionConflict,
    VersionWrite,
    WriteBatch,
    decode_history_cursor,
)
from fhir_server.storage.sqlite_audit import SqliteAuditSink
from fhir_server.storage.sqlite_records import SqliteRecords, apply_record
from fhir_server.storage.sqlite_search_sql import db_of

if TYPE_CHECKING:
    from fhir_server.search.extract import IndexEntries
    from fhir_server.search.query import SearchQuery

_COLUMNS = "rtype, id, version, last_updated, deleted, body"


def _row_to_resource(row: tuple[Any, ...], method: str = "PUT") -> StoredResource:
    rtype, rid, version, last_updated, deleted, body = row[:6]
    return StoredResource(
        resource_type=rtype,
        id=rid,
        version=version,
        last_updated=last_updated,
        deleted=bool(deleted),
        body=bytes(body) if body is not None else None,
        method=method,
    )


def sqlite_path_from_uri(uri: str) -> Path:
    """``sqlite:///relative/x.db`` or ``sqlite:////abs/x.db`` -> a path."""
    if not uri.startswith("sqlite:///"):
        raise ValueError("an SQLite store URI starts with sqlite:///")
    return Path(uri[len("sqlite:///") :])


class SqliteStore(SqliteAuditSink, SqliteRecords):
    """The ``Store`` contract on one SQLite file."""

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        def fetch(conn: sqlite3.Connection) -> StoredResource | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {db_of(resource_type)}resource WHERE rtype=? AND id=?",
                (resource_type, resource_id),
            ).fetchone()
            return _row_to_resource(row) if row else None

        return await self._read(fetch)

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredResource | None:
        def fetch(conn: sqlite3.Connection) -> StoredResource | None:
            row = conn.execute(
                f"SELECT {_COLUMNS}, method FROM history WHERE rtype=? AND id=? AND version=?",
                (resource_type, resource_id, version),
            ).fetchone()
            return _row_to_resource(row, row[6]) if row else None

        return await self._read(fetch)

    async def history(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: str | None = None,
        count: int = 50,
        cursor: str | None = None,
        types: tuple[str, ...] | None = None,
    ) -> HistoryPage:
        clauses: list[str] = []
        args: list[Any] = []
        if resource_type is not None:
            clauses.append("rtype=?")
            args.append(resource_type)
        if resource_id is not None:
            clauses.append("id=?")
            args.append(resource_id)
        if types is not None:
            clauses.append(f"rtype IN ({','.join('?' * len(types))})" if types else "0")
            args.extend(types)
        if since is not None:
            clauses.append("last_updated>=?")
            args.append(since)
        if cursor is not None:
            clauses.append("seq<?")
            args.append(decode_history_cursor(cursor))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_COLUMNS}, method, seq FROM history {where} ORDER BY seq DESC LIMIT ?"

        def fetch(conn: sqlite3.Connection) -> HistoryPage:
            rows = conn.execute(sql, (*args, count + 1)).fetchall()
            page = rows[:count]
            entries = [_row_to_resource(row, row[6]) for row in page]
            more = len(rows) > count
            return HistoryPage(entries, str(page[-1][7]) if more and page else None)

        return await self._read(fetch)

    async def search(self, query: SearchQuery) -> SearchResult:
        return await self._read(lambda conn: sqlite_search.execute(conn, query))

    async def count_matches(self, query: SearchQuery, *, limit: int) -> list[StoredResource]:
        return await self._read(lambda conn: sqlite_search.matching(conn, query, limit=limit))

    async def counts(self) -> dict[str, int]:
        def fetch(conn: sqlite3.Connection) -> dict[str, int]:
            counted: dict[str, int] = {}
            for db in ("main.", db_of("AuditEvent")):
                # The store's own file may still hold AuditEvents indexed before the
                # index had its own file: those are counted from the index file.
                for rtype, n in conn.execute(
                    f"SELECT rtype, count(*) FROM {db}resource WHERE deleted=0 GROUP BY rtype"
                ):
                    if db_of(rtype) == db:
                        counted[rtype] = n
            return counted

        return await self._read(fetch)

    async def commit(self, batch: WriteBatch) -> None:
        if not (batch.writes or batch.claims or batch.records):
            if batch.audit:  # reads' and refusals': durable without waiting for the writer
                await self.journal_audit(batch.audit)
            return
        key = self.audit_key
        await self._write(lambda conn: _apply_batch(conn, batch, audit_key=key))


def _apply_batch(conn: sqlite3.Connection, batch: WriteBatch, *, audit_key: bytes) -> None:
    """Apply ``batch`` inside the writer's transaction."""
    for claim in batch.claims:
        _check_claim(conn, claim)
    indexes: dict[int, tuple[int, str, IndexEntries]] = {}  # by rid: a later write wins
    for write in batch.writes:
        rid = _apply_write(conn, write)
        indexes.pop(rid, None)
        if not write.deleted and write.index is not None:
            indexes[rid] = (rid, write.resource_type, write.index)
    # Index and history rows of the whole batch go in with one statement per table.
    sqlite_search.write_indexes(conn, list(indexes.values()))
    if batch.writes:
        conn.executemany(
            "INSERT INTO history (rtype, id, version, last_updated, deleted, method, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (w.resource_type, w.id, w.version, w.last_updated, int(w.deleted), w.method, w.body)
                for w in batch.writes
            ],
        )
    for record in batch.records:
        apply_record(conn, record)
    if batch.audit:
        sqlite_audit.append(conn, batch.audit, key=audit_key)


def _check_claim(conn: sqlite3.Connection, claim: ConditionalClaim) -> None:
    # The writer holds the database lock, so nothing can slip in between this check
    # and the insert that follows it in the same transaction.
    for match in sqlite_search.matching(conn, claim.query, limit=2):
        if (match.resource_type, match.id) != (claim.resource_type, claim.id):
            raise ConditionalConflict(claim.key)


def _apply_write(conn: sqlite3.Connection, write: VersionWrite) -> int:
    """The resource row of ``write`` (version checked); returns its rid."""
    row = conn.execute(
        "SELECT rid, version FROM resource WHERE rtype=? AND id=?",
        (write.resource_type, write.id),
    ).fetchone()
    current = row[1] if row else 0
    if current != write.expected_version:
        raise VersionConflict(write.resource_type, write.id)
    values = (write.version, write.last_updated, int(write.deleted), write.body)
    if row:
        rid: int = row[0]
        conn.execute(
            "UPDATE resource SET version=?, last_updated=?, deleted=?, body=? WHERE rid=?",
            (*values, rid),
        )
        sqlite_search.delete_index(conn, rid)
        return rid
    cur = conn.execute(
        "INSERT INTO resource (rtype, id, version, last_updated, deleted, body)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (write.resource_type, write.id, *values),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid
