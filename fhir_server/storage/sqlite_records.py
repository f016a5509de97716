"""Server-side records (HL7 inbox, auth data) in the SQLite store's ``record`` table."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from fhir_server.storage.base import RecordChanged, RecordExists, RecordWrite, record_field
from fhir_server.storage.sqlite_engine import SqliteEngine


class SqliteRecords(SqliteEngine):
    """The records part of the ``Store`` contract."""

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        def fetch(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT doc FROM record WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
            return load_doc(row[0]) if row else None

        return await self._read(fetch)

    async def find_records(
        self,
        kind: str,
        *,
        where: dict[str, str | int | bool] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        clause, args = record_filter(kind, where)
        if after is not None:
            clause += " AND key>?"
            args.append(after)
        sql = f"SELECT key, doc FROM record WHERE {clause} ORDER BY key LIMIT ?"

        def fetch(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            return [(key, load_doc(doc)) for key, doc in conn.execute(sql, (*args, limit))]

        return await self._read(fetch)

    async def count_records(
        self, kind: str, *, where: dict[str, str | int | bool] | None = None
    ) -> int:
        clause, args = record_filter(kind, where)

        def fetch(conn: sqlite3.Connection) -> int:
            count: int = conn.execute(
                f"SELECT count(*) FROM record WHERE {clause}", args
            ).fetchone()[0]
            return count

        return await self._read(fetch)


def apply_record(conn: sqlite3.Connection, record: RecordWrite) -> None:
    if record.expect is not None:
        _check_expected(conn, record, record.expect)
    if record.doc is None:
        conn.execute("DELETE FROM record WHERE kind=? AND key=?", (record.kind, record.key))
        return
    doc = orjson.dumps(record.doc).decode()
    if record.if_absent:
        cur = conn.execute(
            "INSERT INTO record (kind, key, doc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (record.kind, record.key, doc),
        )
        if cur.rowcount == 0:
            raise RecordExists(record.kind, record.key)
        return
    conn.execute(
        "INSERT INTO record (kind, key, doc) VALUES (?, ?, ?)"
        " ON CONFLICT (kind, key) DO UPDATE SET doc=excluded.doc",
        (record.kind, record.key, doc),
    )


def _check_expected(conn: sqlite3.Connection, record: RecordWrite, expect: dict[str, Any]) -> None:
    """Inside the writer's transaction, so nobody can change the row between the two."""
    row = conn.execute(
        "SELECT doc FROM record WHERE kind=? AND key=?", (record.kind, record.key)
    ).fetchone()
    stored = load_doc(row[0]) if row is not None else None
    if stored is None or any(stored.get(name) != value for name, value in expect.items()):
        raise RecordChanged(record.kind, record.key)


def record_filter(kind: str, where: dict[str, str | int | bool] | None) -> tuple[str, list[Any]]:
    clause = "kind=?"
    args: list[Any] = [kind]
    for field_name, value in (where or {}).items():
        clause += f" AND json_extract(doc, '$.{record_field(field_name)}')=?"
        args.append(int(value) if isinstance(value, bool) else value)
    return clause, args


def load_doc(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(text)
    return doc
