"""Reads' AuditEvents, durable in a file of their own until the store's writer chains them.

Every read waits for its AuditEvent to be durable. In the store's file that meant waiting
for SQLite's one writer, and so for the largest write in progress (a 1,000-entry
transaction commits for 100 ms or more). Audit-only batches (reads, searches, refusals)
are made durable here instead, in ``<store>.audit-journal`` (WAL, ``synchronous=FULL``,
its own writer thread), and then moved into the chain by the store's writer, off the
request path. A move is idempotent (events already chained by event id are skipped), so a
crash between the chain's commit and the journal's delete only repeats a move; rows a
killed process left are moved by the next process to open the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_server.storage.sqlite_files import WriterLock, connect

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pending ("
    " seq INTEGER PRIMARY KEY, owner TEXT NOT NULL, event_id TEXT NOT NULL, event BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pending_owner ON pending (owner, seq)",
)
MOVE_LIMIT = 2000  # events one move chains: bounds how long it holds the store's writer


@dataclass(frozen=True, slots=True)
class Pending:
    seqs: list[int]
    events: list[dict[str, Any]]


def journal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".audit-journal")


class AuditJournal:
    """The journal file, written from one thread; ``owner`` tells this process's rows."""

    def __init__(self, db_path: Path) -> None:
        self.path = journal_path(db_path)
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="audit-journal"
        )
        self._conn: sqlite3.Connection | None = None
        # Writers of every process take turns before SQLite's lock (see WriterLock).
        self._turns = WriterLock(self.path)

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        conn = connect(self.path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            conn.execute(statement)
        self._turns.open()
        self._conn = conn

    async def close(self) -> None:
        def close_sync() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._turns.close()

        await self._run(close_sync)
        self._thread.shutdown(wait=True)

    async def append(self, events: Sequence[dict[str, Any]], *, guard: Callable[[], None]) -> None:
        """Durable once this returns; ``guard`` raises if the store may not be written."""
        rows = [(self.owner, str(e["id"]), orjson.dumps(e)) for e in events]

        def insert(conn: sqlite3.Connection) -> None:
            guard()
            with self._turns:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT INTO pending (owner, event_id, event) VALUES (?, ?, ?)", rows
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

        await self._on_conn(insert)

    async def pending(self, *, everyone: bool, limit: int = MOVE_LIMIT) -> Pending:
        """The oldest rows not yet moved: this process's, or (``everyone``) all of them."""

        def fetch(conn: sqlite3.Connection) -> Pending:
            sql = "SELECT seq, event FROM pending"
            args: list[Any] = []
            if not everyone:
                sql += " WHERE owner=?"
                args.append(self.owner)
            rows = conn.execute(f"{sql} ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
            return Pending([r[0] for r in rows], [orjson.loads(r[1]) for r in rows])

        return await self._on_conn(fetch)

    async def forget(self, seqs: list[int]) -> None:
        """Delete rows the chain now holds."""

        def delete(conn: sqlite3.Connection) -> None:
            with self._turns:  # one statement: one commit
                marks = ",".join("?" * len(seqs))
                conn.execute(f"DELETE FROM pending WHERE seq IN ({marks})", seqs)

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
