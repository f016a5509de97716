"""Audit-only commits on SQLite go through the journal (``sqlite_journal``).

Pins: a read's AuditEvent is durable while the store's writer is held by a long write;
every journaled event is chained once, also when two stores (two server processes) share
one file, also when a move is repeated (a crash between the chain's commit and the
journal's delete), also when the process that journaled them was killed (its file is
adopted, and a live process's is not); a forged chain tail does not stop auditing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from audit.chain import verify
from audit.events import AccessRecord, Interaction, build_audit_event
from fhir_server.storage.base import VersionWrite, WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from fhir_server.storage.sqlite_journal import journal_path
from tests.conftest import AUDIT_KEY

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def events(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        build_audit_event(
            AccessRecord(
                interaction=Interaction.READ,
                recorded=START + timedelta(seconds=n),
                status=200,
                resource_type="Patient",
                resource_id=f"{prefix}{n}",
            ),
            server_id="medicore-test",
            event_id=f"{prefix}-{n}",
        )
        for n in range(count)
    ]


async def chain_ids(store: SqliteStore) -> list[str]:
    records = [r async for r in store.iter_audit()]
    assert verify(records, key=AUDIT_KEY).ok
    return [r.event()["id"] for r in records]


def journaled(db: Path) -> int:
    """Rows in every journal file of the store at ``db``."""
    total = 0
    for path in journal_path(db).glob("*.db"):
        with sqlite3.connect(path) as conn:
            total += int(conn.execute("SELECT count(*) FROM pending").fetchone()[0])
    return total


async def test_an_audit_commit_does_not_wait_for_the_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "busy.db", audit_key=AUDIT_KEY)
    await store.open()
    try:
        release, holding = threading.Event(), threading.Event()

        def long_write(conn: sqlite3.Connection) -> None:
            holding.set()
            release.wait(timeout=30)

        held = asyncio.create_task(store._write(long_write))
        await asyncio.to_thread(holding.wait, 10)
        # Durable in the journal while the writer is still held by the long write.
        await asyncio.wait_for(store.commit(WriteBatch(audit=events("r", 3))), timeout=10)
        assert not held.done()
        assert journaled(store.path) == 3
        release.set()
        await held
        assert await chain_ids(store) == ["r-0", "r-1", "r-2"]
        assert journaled(store.path) == 0
    finally:
        release.set()
        await store.close()


async def test_two_stores_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    first, second = (SqliteStore(tmp_path / "shared.db", audit_key=AUDIT_KEY) for _ in "ab")
    await first.open()
    await second.open()
    try:
        for a, b in zip(events("a", 6), events("b", 6), strict=True):
            await first.commit(WriteBatch(audit=[a]))
            await second.commit(WriteBatch(audit=[b]))
        racing = [(store, e) for store, p in ((first, "x"), (second, "y")) for e in events(p, 5)]
        await asyncio.gather(*(store.commit(WriteBatch(audit=[e])) for store, e in racing))
        await second.chain_journal()
        ids = await chain_ids(first)
        expected = {f"{p}-{n}" for p in "ab" for n in range(6)} | {
            f"{p}-{n}" for p in "xy" for n in range(5)
        }
        assert len(ids) == len(set(ids)) and set(ids) == expected
    finally:
        await first.close()
        await second.close()


async def test_writes_and_audit_only_batches_share_one_chain(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "mixed.db", audit_key=AUDIT_KEY)
    await store.open()
    try:
        await store.commit(WriteBatch(audit=events("r", 2)))
        write = VersionWrite(
            resource_type="Patient",
            id="p1",
            version=1,
            expected_version=0,
            last_updated="2026-11-26T10:00:00+00:00",
            method="PUT",
            body=b'{"resourceType":"Patient","id":"p1"}',
            index=None,
        )
        await store.commit(WriteBatch(writes=[write], audit=events("w", 1)))
        await store.commit(WriteBatch(audit=events("l", 2500)))  # more than one move
        ids = await chain_ids(store)
        assert len(ids) == len(set(ids)) == 2503
        assert {"r-0", "r-1", "w-0", "l-0", "l-2499"} <= set(ids)
    finally:
        await store.close()


async def test_a_repeated_move_chains_nothing_twice(tmp_path: Path) -> None:
    """A crash after the chain's commit and before the journal's delete leaves the rows in
    the journal; moving them again must skip what the chain already holds."""
    store = SqliteStore(tmp_path / "again.db", audit_key=AUDIT_KEY)
    await store.open()
    try:
        batch = events("m", 4)
        await store.commit(WriteBatch(audit=batch))
        await store.chain_journal()
        own = store._journal.path  # type: ignore[union-attr]
        with sqlite3.connect(own) as conn:  # the rows again, as if they were never deleted
            conn.executemany(
                "INSERT INTO pending (event) VALUES (?)", [(orjson.dumps(e),) for e in batch]
            )
        await store.commit(WriteBatch(audit=events("n", 1)))
        assert await chain_ids(store) == ["m-0", "m-1", "m-2", "m-3", "n-0"]
        assert journaled(store.path) == 0
    finally:
        await store.close()


async def test_a_killed_process_rows_are_chained_by_the_next_open(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    store = SqliteStore(db, audit_key=AUDIT_KEY)
    await store.open()
    await store.close()
    assert list(journal_path(db).glob("*.db")) == []  # a clean close leaves no file
    dead = journal_path(db) / "4242-dead.db"  # durable there, then its process was killed
    with sqlite3.connect(dead) as conn:
        conn.execute("CREATE TABLE pending (seq INTEGER PRIMARY KEY, event BLOB NOT NULL)")
        conn.executemany(
            "INSERT INTO pending (event) VALUES (?)", [(orjson.dumps(e),) for e in events("k", 3)]
        )
    again = SqliteStore(db, audit_key=AUDIT_KEY)
    await again.open()
    try:
        assert await chain_ids(again) == ["k-0", "k-1", "k-2"]
        assert journaled(db) == 0 and not dead.exists()
    finally:
        await again.close()


async def test_a_forged_tail_does_not_stop_auditing(tmp_path: Path) -> None:
    """A forged last row (a BLOB hash) is chained after, as text, and verify names it."""
    store = SqliteStore(tmp_path / "forged.db", audit_key=AUDIT_KEY)
    await store.open()
    try:
        await store.commit(WriteBatch(audit=events("a", 1)))
        await store.chain_journal()
        with sqlite3.connect(tmp_path / "forged.db") as conn:
            conn.execute(
                "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
                " VALUES (2, 'forged', '2026-11-26T10:00:00Z', 'x', X'00', '{}')"
            )
        await asyncio.wait_for(store.commit(WriteBatch(audit=events("b", 1))), timeout=10)
        records = [r async for r in store.iter_audit()]
        assert [r.event_id for r in records] == ["a-0", "forged", "b-0"]
        report = verify(records, key=AUDIT_KEY)
        assert not report.ok and report.problem is not None
        assert report.problem.position == 2
        assert await store.ping() is None  # the writer thread is free
    finally:
        await store.close()


async def test_a_live_process_journal_is_not_adopted(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    first, second = (SqliteStore(db, audit_key=AUDIT_KEY) for _ in "ab")
    await first.open()
    try:
        await second.open()  # first's file is locked: second leaves it alone
        try:
            assert len(list(journal_path(db).glob("*.db"))) == 2
        finally:
            await second.close()
        assert len(list(journal_path(db).glob("*.db"))) == 1
    finally:
        await first.close()
