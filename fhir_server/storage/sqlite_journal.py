"""Reads' AuditEvents, durable in a file of their own until the store's writer chains them.

Every read waits for its AuditEvent to be durable. In the store's file that meant waiting
for SQLite's one writer, and so for the largest write in progress (a 1,000-entry
transaction commits for 100 ms or more). Audit-only batches (reads, searches, refusals)
are made durable here instead, in a file of the process's own under
``<store>.audit-journal/`` (WAL, ``synchronous=FULL``, its own writer thread: the workers
of a server never wait for each other here), and then moved into the chain by the store's
writer, off the request path. A move is idempotent (events already chained by event id
are skipped), so a crash between the chain's commit and the journal's delete only repeats
a move. Each process holds a ``flock`` on its file's ``.lock`` while it lives; a file whose
lock is free belongs to a dead process, and the next process to open the store moves its
rows and removes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_server.storage.sqlite_files import connect

_SCHEMA = "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY, event BLOB NOT NULL)"
MOVE_LIMIT = 2000  # events one move chains: bounds how long it holds the store's writer


@dataclass(frozen=True, slots=True)
class Pending:
    seqs: list[int]
    events: list[dict[str, Any]]


def journal_path(db_path: Path) -> Path:
    """The folder of the journal files of the store at ``db_path``."""
    return db_path.with_name(db_path.name + ".audit-journal")


class AuditJournal:
    """One process's journal file, written from one thread of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="audit-journal"
        )
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    @classmethod
    def own(cls, db_path: Path) -> AuditJournal:
        name = f"{os.getpid()}-{secrets.token_hex(4)}.db"
        return cls(journal_path(db_path) / name)

    def claim(self) -> bool:
        """Take this file's lock (held until ``close``); False while its process lives."""
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None and not self.claim():
            raise sqlite3.OperationalError("the audit journal file is another process's")
        conn = connect(self.path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
        self._conn = conn

    async def close(self, *, remove: bool = False) -> None:
        """Close; ``remove``: delete the file too (only once its rows are chained)."""

        def close_sync() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if remove:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{self.path}{suffix}")
            if self._lock_fd is not None:
                if remove:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path.with_suffix(".lock"))
                os.close(self._lock_fd)
                self._lock_fd = None

        await self._run(close_sync)
        self._thread.shutdown(wait=True)

    async def append(self, events: Sequence[dict[str, Any]], *, guard: Callable[[], None]) -> None:
        """Durable once this returns; ``guard`` raises if the store may not be written."""
        rows = [(orjson.dumps(e),) for e in events]

        def insert(conn: sqlite3.Connection) -> None:
            guard()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT INTO pending (event) VALUES (?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._on_conn(insert)

    async def pending(self, *, limit: int = MOVE_LIMIT) -> Pending:
        """The oldest rows not yet moved."""

        def fetch(conn: sqlite3.Connection) -> Pending:
            rows = conn.execute(
                "SELECT seq, event FROM pending ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            return Pending([r[0] for r in rows], [orjson.loads(r[1]) for r in rows])

        return await self._on_conn(fetch)

    async def forget(self, seqs: list[int]) -> None:
        """Delete rows the chain now holds (one statement: one commit, not synced)."""

        def delete(conn: sqlite3.Connection) -> None:
            # Without a sync of its own: a delete lost to a power cut only repeats a move,
            # and the next insert's sync makes it durable anyway.
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                marks = ",".join("?" * len(seqs))
                conn.execute(f"DELETE FROM pending WHERE seq IN ({marks})", seqs)
            finally:
                conn.execute("PRAGMA synchronous=FULL")

        if seqs:
            await self._on_conn(delete)

    async def _on_conn(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            if self._conn is None:
                raise sqlite3.OperationalError("the audit journal is not open")
            return fn(self._conn)

        return await self._run(run)

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)


def orphans(db_path: Path) -> list[AuditJournal]:
    """Journal files of processes that are gone, each claimed by the caller."""
    folder = journal_path(db_path)
    found = []
    for path in sorted(folder.glob("*.db")) if folder.is_dir() else []:
        journal = AuditJournal(path)  # its thread starts only with its first call
        if journal.claim():
            found.append(journal)
    return found
