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
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from fhir_server.storage import sqlite_audit_index, sqlite_audit_schema, sqlite_search
from fhir_server.storage.base import ConditionalConflict, StoreError, StoreFull, StoreUnavailable
from fhir_server.storage.sqlite_files import WAL_LIMIT, WriterLock, connect, truncate_wal
from fhir_server.storage.sqlite_schema import CORE_SCHEMA

T = TypeVar("T")
_GROUP_LIMIT = 512  # jobs per group commit: bounds the latency one commit can add
_READERS = 4
_WAL_BACKOFF_MAX = 60.0
# Pages kept back, under a page limit, for the AuditEvents of reads: when writes no longer
# fit, reads (which are never answered unaudited) keep working.
AUDIT_RESERVE_PAGES = 256


class _Job:
    __slots__ = ("audit_only", "fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], *, audit_only: bool) -> None:
        self.fn = fn
        self.audit_only = audit_only  # may use the audit reserve
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class _TransactionLost(Exception):
    def __init__(self, job: _Job, error: Exception) -> None:
        self.job = job
        self.error = error


class _ProbeDone(Exception):
    """Undoes the readiness probe's write (through its job's savepoint)."""


class FileGone(StoreUnavailable):
    """The file at the store's path is not the one the connections have open."""


class SqliteEngine:
    """Connections, threads and the group-commit loop; the store's methods build on it."""

    # Past this size the writer forces a checkpoint that resets the WAL: automatic
    # (passive) checkpoints never reset it while some reader or other process always
    # holds a snapshot, and the file then grows without bound ("checkpoint starvation").
    wal_limit = WAL_LIMIT
    wal_check_seconds = 1.0

    def __init__(
        self, path: Path | str, *, audit_key: bytes = b"", max_pages: int | None = None
    ) -> None:
        self.path = Path(path)
        self.audit_key = audit_key
        # A page limit on the store file (test-only: it stands in for a full disk).
        self.max_pages = max_pages
        self._identity: tuple[int, int] | None = None
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
            conn.execute("CREATE TABLE IF NOT EXISTS space_probe (x BLOB)")
            self.audit_index.create()  # before any reader attaches it
            self._turns.open()
            self._identity = _identity(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise map_error(exc, "cannot open the SQLite store") from exc
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
                self._run_group(group)
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

    def _check_file(self) -> None:
        """Refuse to commit into a file that is no longer at the store's path: writes to a
        moved or deleted file would be acknowledged and then lost at the next start."""
        try:
            same = _identity(self.path) == self._identity
        except OSError:
            same = False
        if not same:
            raise FileGone("the SQLite file was moved, replaced or removed")

    def _limit_pages(self, conn: sqlite3.Connection, job: _Job) -> None:
        if self.max_pages is not None:
            reserve = 0 if job.audit_only else AUDIT_RESERVE_PAGES
            conn.execute(f"PRAGMA max_page_count={max(self.max_pages - reserve, 1)}")

    def _run_group(self, group: list[_Job]) -> None:
        conn = self._writer
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            self._check_file()
        except FileGone as exc:
            for job in group:
                job.future.set_exception(exc)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                self._limit_pages(conn, job)
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, job.fn(conn)))
                    conn.execute("RELEASE job")
                except Exception as exc:  # the job's own failure; siblings still commit
                    try:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    except sqlite3.Error:
                        # SQLite rolled back the whole transaction (it may, e.g. when
                        # full): this job fails, the others run again without it.
                        raise _TransactionLost(job, exc) from None
                    outcomes.append((False, map_error(exc)))
            conn.execute("COMMIT")
        except _TransactionLost as lost:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            lost.job.future.set_exception(map_error(lost.error))
            others = [job for job in group if job is not lost.job]
            if others:
                self._run_group(others)
            return
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = map_error(exc, "the SQLite store could not commit")
            for job in group:
                job.future.set_exception(failure)
            return
        for job, (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    async def _write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        audit_only: bool = False,
    ) -> T:
        """Run ``fn`` on the writer, inside a group transaction. ``audit_only`` jobs
        (AuditEvents alone) may use the pages reserved for them."""
        if self._writer_thread is None:
            raise StoreUnavailable("the SQLite store is not open")
        job = _Job(fn, audit_only=audit_only)
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
        """Writable (the write lock, the file still at its path) and room for a write:
        a page-sized row is inserted and rolled back, so a full store fails the probe."""

        def probe(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO space_probe VALUES (zeroblob(8192))")
            raise _ProbeDone

        self._check_file()
        with contextlib.suppress(_ProbeDone):
            await self._write(probe)


# SQLite's primary result codes that mean the file or its disk refuse the write; their
# text ("attempt to write a readonly database", "disk I/O error"...) is the operator's.
_UNAVAILABLE = {
    "SQLITE_READONLY": "the SQLite file is read-only",
    "SQLITE_IOERR": "disk I/O error on the SQLite file",
    "SQLITE_CANTOPEN": "the SQLite file cannot be opened",
    "SQLITE_BUSY": "the SQLite file is locked by another process",
    "SQLITE_LOCKED": "the SQLite file is locked",
    "SQLITE_CORRUPT": "the SQLite file is damaged",
    "SQLITE_NOTADB": "the SQLite file is not a database",
}


def map_error(exc: Exception, context: str = "the SQLite store failed") -> Exception:
    """A store error for ``exc``: StoreFull when out of space (507), StoreUnavailable
    naming the cause for the other failures of the file or disk (503)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        return ConditionalConflict("integrity")
    mapped: StoreError
    if isinstance(exc, sqlite3.Error):
        name = (getattr(exc, "sqlite_errorname", None) or "").split("_")[:2]
        code = "_".join(name)
        if code == "SQLITE_FULL":
            mapped = StoreFull(f"{context}: the database or disk is full")
        else:
            mapped = StoreUnavailable(f"{context}: {_UNAVAILABLE.get(code, code or 'error')}")
    elif isinstance(exc, OSError):
        full = exc.errno in (28, 122)  # ENOSPC, EDQUOT
        mapped = (StoreFull if full else StoreUnavailable)(f"{context}: {exc.strerror}")
    else:
        return exc
    mapped.__cause__ = exc
    return mapped


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


@contextmanager
def mapped_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise map_error(exc) from exc
