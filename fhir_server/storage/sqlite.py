"""Embedded store: one SQLite file in WAL mode, durable commits grouped by one writer thread.

Every write runs on a single writer connection in a dedicated thread. Jobs that arrive
while a commit is in flight are grouped into the next transaction (each in its own
SAVEPOINT, so one job's conflict never undoes another's), which is what makes durable
(``synchronous=FULL``) writes affordable. Reads run on a small pool of reader threads,
each with its own connection; WAL lets them proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from audit.chain import ChainedRecord, ChainHead
from audit.events import fhir_instant
from audit.sink import check_follows
from fhir_server.search.extract import extract_index
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import sqlite_audit, sqlite_search
from fhir_server.storage.base import (
    ConditionalClaim,
    ConditionalConflict,
    HistoryPage,
    RecordExists,
    RecordWrite,
    SearchResult,
    StoredResource,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    VersionWrite,
    WriteBatch,
)
from fhir_server.storage.sqlite_schema import CORE_SCHEMA

if TYPE_CHECKING:
    from fhir_server.search.query import SearchQuery

T = TypeVar("T")
_GROUP_LIMIT = 512  # jobs per group commit: bounds the latency one commit can add
_READERS = 4

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


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class SqliteStore:
    """The ``Store`` contract on one SQLite file."""

    def __init__(self, path: Path | str, *, audit_key: bytes = b"") -> None:
        self.path = Path(path)
        self.audit_key = audit_key
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_thread: threading.Thread | None = None
        self._writer: sqlite3.Connection | None = None
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=_READERS, thread_name_prefix="sqlite-read"
        )
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for statement in (*CORE_SCHEMA, *sqlite_search.SCHEMA, *sqlite_audit.AUDIT_SCHEMA):
                conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable("cannot open the SQLite store") from exc
        self._writer = conn
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="sqlite-writer", daemon=True
        )
        self._writer_thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def close(self) -> None:
        if self._writer_thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer_thread.join)
            self._writer_thread = None
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            group = [job]
            stop = False
            while len(group) < _GROUP_LIMIT:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._run_group(group)
            if stop:
                return

    def _run_group(self, group: list[_Job]) -> None:
        conn = self._writer
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, job.fn(conn)))
                    conn.execute("RELEASE job")
                except Exception as exc:  # the job's own failure; siblings still commit
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((False, _map_error(exc)))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = StoreUnavailable("the SQLite store could not commit")
            failure.__cause__ = exc
            for job in group:
                job.future.set_exception(failure)
            return
        for job, (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer_thread is None:
            raise StoreUnavailable("the SQLite store is not open")
        job = _Job(fn)
        self._jobs.put(job)
        return await asyncio.wrap_future(job.future)

    # -- readers -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with _mapped_errors():
                return fn(self._reader())

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, run)
        except RuntimeError as exc:  # executor shut down
            raise StoreUnavailable("the SQLite store is closed") from exc

    # -- Store contract ------------------------------------------------------------------

    async def ping(self) -> None:
        def probe(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS _ping (x)")
            conn.execute("INSERT INTO _ping VALUES (1)")
            conn.execute("DELETE FROM _ping")

        if not self.path.exists():
            raise StoreUnavailable("the SQLite file is missing")
        await self._write(probe)

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        def fetch(conn: sqlite3.Connection) -> StoredResource | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM resource WHERE rtype=? AND id=?",
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
    ) -> HistoryPage:
        clauses: list[str] = []
        args: list[Any] = []
        if resource_type is not None:
            clauses.append("rtype=?")
            args.append(resource_type)
        if resource_id is not None:
            clauses.append("id=?")
            args.append(resource_id)
        if since is not None:
            clauses.append("last_updated>=?")
            args.append(since)
        if cursor is not None:
            clauses.append("seq<?")
            args.append(_decode_cursor(cursor))
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
            rows = conn.execute(
                "SELECT rtype, count(*) FROM resource WHERE deleted=0 GROUP BY rtype"
            ).fetchall()
            return {rtype: n for rtype, n in rows}

        return await self._read(fetch)

    async def commit(self, batch: WriteBatch) -> None:
        await self._write(lambda conn: _apply_batch(conn, batch, audit_key=self.audit_key))

    # -- the audit chain (audit.sink.AuditSink) -----------------------------------------

    async def audit_head(self) -> ChainHead:
        return await self._read(sqlite_audit.head)

    async def append_audit(self, records: Sequence[ChainedRecord]) -> None:
        def append(conn: sqlite3.Connection) -> None:
            check_follows(sqlite_audit.head(conn), records)
            conn.executemany(
                "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.position, r.event()["id"], r.recorded(), r.prev_hash, r.hash, r.event_json)
                    for r in records
                ],
            )

        await self._write(append)

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        position = start
        while True:

            def fetch(conn: sqlite3.Connection, first: int = position) -> list[ChainedRecord]:
                return sqlite_audit.rows(conn, start=first, stop=stop, limit=1000)

            page = await self._read(fetch)
            for record in page:
                yield record
            if len(page) < 1000:
                return
            position = page[-1].position + 1

    async def audit_bounds(self, *, since: datetime, until: datetime) -> tuple[int, int] | None:
        return await self._read(
            lambda conn: sqlite_audit.bounds(
                conn, since=fhir_instant(since), until=fhir_instant(until)
            )
        )

    async def index_audit(self, *, limit: int = 200) -> int:
        """Make recorded AuditEvents searchable; returns how many were indexed."""
        pending = await self._read(lambda conn: sqlite_audit.pending(conn, limit=limit))
        if not pending:
            return 0
        prepared = [
            _audit_resource(event_id, recorded, event) for _, event_id, recorded, event in pending
        ]
        upto = pending[-1][0]

        def insert(conn: sqlite3.Connection) -> None:
            if sqlite_audit.indexed_upto(conn) >= upto:
                return  # another process indexed them meanwhile
            for write in prepared:
                exists = conn.execute(
                    "SELECT 1 FROM resource WHERE rtype='AuditEvent' AND id=?", (write.id,)
                ).fetchone()
                if exists is None:
                    _insert_resource(conn, write)
            conn.execute(
                "INSERT INTO audit_indexed (id, upto) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET upto=excluded.upto",
                (upto,),
            )

        await self._write(insert)
        return len(pending)

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        def fetch(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT doc FROM record WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
            return _load_doc(row[0]) if row else None

        return await self._read(fetch)

    async def find_records(
        self,
        kind: str,
        *,
        where: dict[str, str | int | bool] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        clause, args = _record_filter(kind, where)
        if after is not None:
            clause += " AND key>?"
            args.append(after)
        sql = f"SELECT key, doc FROM record WHERE {clause} ORDER BY key LIMIT ?"

        def fetch(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            return [(key, _load_doc(doc)) for key, doc in conn.execute(sql, (*args, limit))]

        return await self._read(fetch)

    async def count_records(
        self, kind: str, *, where: dict[str, str | int | bool] | None = None
    ) -> int:
        clause, args = _record_filter(kind, where)

        def fetch(conn: sqlite3.Connection) -> int:
            count: int = conn.execute(
                f"SELECT count(*) FROM record WHERE {clause}", args
            ).fetchone()[0]
            return count

        return await self._read(fetch)


def _apply_batch(conn: sqlite3.Connection, batch: WriteBatch, *, audit_key: bytes) -> None:
    for claim in batch.claims:
        _check_claim(conn, claim)
    for write in batch.writes:
        _apply_write(conn, write)
    for record in batch.records:
        _apply_record(conn, record)
    if batch.audit:
        sqlite_audit.append(conn, batch.audit, key=audit_key)


def _audit_resource(event_id: str, recorded: str, event_json: bytes) -> VersionWrite:
    """The searchable resource view of one chained AuditEvent."""
    body = sqlite_audit.event_body(event_json)
    last_updated = recorded.replace("Z", "+00:00")
    body["meta"] = {"versionId": "1", "lastUpdated": last_updated}
    return VersionWrite(
        resource_type="AuditEvent",
        id=event_id,
        version=1,
        expected_version=0,
        last_updated=last_updated,
        method="POST",
        body=orjson.dumps(body),
        index=extract_index(body, SearchRegistry.default()),
    )


def _insert_resource(conn: sqlite3.Connection, write: VersionWrite) -> None:
    cur = conn.execute(
        "INSERT INTO resource (rtype, id, version, last_updated, deleted, body)"
        " VALUES (?, ?, ?, ?, 0, ?)",
        (write.resource_type, write.id, write.version, write.last_updated, write.body),
    )
    assert cur.lastrowid is not None and write.index is not None
    sqlite_search.write_index(conn, cur.lastrowid, write.resource_type, write.index)


def _apply_record(conn: sqlite3.Connection, record: RecordWrite) -> None:
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


def _record_filter(kind: str, where: dict[str, str | int | bool] | None) -> tuple[str, list[Any]]:
    clause = "kind=?"
    args: list[Any] = [kind]
    for field_name, value in (where or {}).items():
        if not field_name.replace("_", "").isalnum():
            raise ValueError("record filter fields are plain names")
        clause += f" AND json_extract(doc, '$.{field_name}')=?"
        args.append(int(value) if isinstance(value, bool) else value)
    return clause, args


def _load_doc(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(text)
    return doc


def _check_claim(conn: sqlite3.Connection, claim: ConditionalClaim) -> None:
    # The writer holds the database lock, so nothing can slip in between this check
    # and the insert that follows it in the same transaction.
    for match in sqlite_search.matching(conn, claim.query, limit=2):
        if (match.resource_type, match.id) != (claim.resource_type, claim.id):
            raise ConditionalConflict(claim.key)


def _apply_write(conn: sqlite3.Connection, write: VersionWrite) -> None:
    row = conn.execute(
        "SELECT rid, version FROM resource WHERE rtype=? AND id=?",
        (write.resource_type, write.id),
    ).fetchone()
    current = row[1] if row else 0
    if current != write.expected_version:
        raise VersionConflict(write.resource_type, write.id)
    values = (write.version, write.last_updated, int(write.deleted), write.body)
    if row:
        rid = row[0]
        conn.execute(
            "UPDATE resource SET version=?, last_updated=?, deleted=?, body=? WHERE rid=?",
            (*values, rid),
        )
        sqlite_search.delete_index(conn, rid)
    else:
        cur = conn.execute(
            "INSERT INTO resource (rtype, id, version, last_updated, deleted, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (write.resource_type, write.id, *values),
        )
        rid = cur.lastrowid
        assert rid is not None
    if not write.deleted and write.index is not None:
        sqlite_search.write_index(conn, rid, write.resource_type, write.index)
    conn.execute(
        "INSERT INTO history (rtype, id, version, last_updated, deleted, method, body)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            write.resource_type,
            write.id,
            write.version,
            write.last_updated,
            int(write.deleted),
            write.method,
            write.body,
        ),
    )


def _decode_cursor(cursor: str) -> int:
    try:
        return int(cursor)
    except ValueError as exc:
        raise StoreError("malformed history cursor") from exc


def _map_error(exc: Exception) -> Exception:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        return ConditionalConflict("integrity")
    if isinstance(exc, sqlite3.Error):
        mapped = StoreUnavailable("the SQLite store failed")
        mapped.__cause__ = exc
        return mapped
    return exc


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreUnavailable("the SQLite store failed") from exc
