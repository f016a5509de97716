"""The SQLite engine under the store: one writer thread with group commit, reader threads.

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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from fhir_server.storage import sqlite_audit_index, sqlite_audit_schema, sqlite_search
from fhir_server.storage.base import ConditionalConflict, StoreError, StoreUnavailable
from fhir_server.storage.sqlite_files import WAL_LIMIT, WriterLock, connect, truncate_wal
from fhir_server.storage.sqlite_schema import CORE_SCHEMA

T = TypeVar("T")
_GROUP_LIMIT = 512  # jobs per group commit: bounds the latency one commit can add
_READERS = 4
_WAL_BACKOFF_MAX = 60.0


class _Job:
    __slots__ = ("alone", "fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], *, alone: bool) -> None:
        self.fn = fn
        self.alone = alone  # one autocommitted statement, run outside the group's transaction
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class SqliteEngine:
    """Connections, threads and the group-commit loop; the store's methods build on it."""

    # Past this size the writer forces a checkpoint that resets the WAL: automatic
    # (passive) checkpoints never reset it while some reader or other process always
    # holds a snapshot, and the file then grows without bound ("checkpoint starvation").
    wal_limit = WAL_LIMIT
    wal_check_seconds = 1.0

    def __init__(self, path: Path | str, *, audit_key: bytes = b"") -> None:
        self.path = Path(path)
        self.audit_key = audit_key
        self.audit_index = sqlite_audit_index.AuditIndexFile(self.path)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_thread: threading.Thread | None = None
        self._writer: sqlite3.Connection | None = None
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=_READERS, thread_name_prefix="sqlite-read"
        )
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._next_wal_check = 0.0
        self._wal_backoff = 1.0
        self._turns = WriterLock(self.path)
        self.clock: Callable[[], float] = time.monotonic  # paces the WAL checks

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for statement in (
                *CORE_SCHEMA,
                *sqlite_search.SCHEMA,
                *sqlite_audit_schema.AUDIT_SCHEMA,
            ):
                conn.execute(statement)
            sqlite_audit_schema.add_layout_column(conn)
            self.audit_index.create()  # before any reader attaches it
            self._turns.open()
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable("cannot open the SQLite store") from exc
        self._writer = conn
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="sqlite-writer", daemon=True
        )
        self._writer_thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
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
        self._turns.close()
        self.audit_index.close()

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
            with self._turns:
                together = [job for job in group if not job.alone]
                if together:
                    self._run_group(together)
                for job in group:
                    if job.alone:
                        self._run_alone(job)
                self._keep_wal_small()
            if stop:
                return

    def _keep_wal_small(self) -> None:
        now = self.clock()
        if now < self._next_wal_check:
            return
        self._next_wal_check = now + self.wal_check_seconds
        if self._writer is None:
            return
        busy = truncate_wal(self._writer, self.path, limit=self.wal_limit)
        if busy is None:
            return
        # A snapshot held for long (e.g. an export in another process): back off, so that
        # writes are not held up by a wait at every check meanwhile.
        self._wal_backoff = min(self._wal_backoff * 2, _WAL_BACKOFF_MAX) if busy else 1.0
        if busy:
            self._next_wal_check = now + max(self.wal_check_seconds, self._wal_backoff)

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
                    outcomes.append((False, map_error(exc)))
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

    def _run_alone(self, job: _Job) -> None:
        conn = self._writer
        assert conn is not None
        try:
            result = job.fn(conn)
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            job.future.set_exception(map_error(exc))
            return
        job.future.set_result(result)

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """Run ``fn`` on the writer: inside a group transaction, or, ``alone``, in
        autocommit mode (``fn`` must then write with a single statement)."""
        if self._writer_thread is None:
            raise StoreUnavailable("the SQLite store is not open")
        job = _Job(fn, alone=alone)
        self._jobs.put(job)
        return await asyncio.wrap_future(job.future)

    # -- readers -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            sqlite_audit_index.attach(conn, self.path)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with mapped_errors():
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


def map_error(exc: Exception) -> Exception:
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
def mapped_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreUnavailable("the SQLite store failed") from exc
