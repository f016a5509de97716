"""SQLite store faults at the store level: a full file and a file gone from its path.

Pins: a write that does not fit is StoreFull while AuditEvents still fit in the reserve,
also when both arrive in one group commit (SQLite may roll back the whole transaction on
SQLITE_FULL: the others run again without the failing job); freed pages are used again;
ping reports a full store; nothing commits while the file is not at the store's path.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from audit.chain import verify
from fhir_server.storage.base import StoreFull, StoreUnavailable, VersionWrite, WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from fhir_server.storage.sqlite_engine import AUDIT_RESERVE_PAGES, map_error
from tests.conftest import AUDIT_KEY
from tests.integration.storage.test_sqlite_audit_journal import events


def write(n: int, size: int = 3000) -> VersionWrite:
    return VersionWrite(
        resource_type="Patient",
        id=f"p{n}",
        version=1,
        expected_version=0,
        last_updated="2026-11-26T10:00:00+00:00",
        method="PUT",
        body=b'{"resourceType":"Patient","text":"' + b"x" * size + b'"}',
        index=None,
    )


async def limited_store(tmp_path: Path, room: int) -> SqliteStore:
    path = tmp_path / "store.db"
    probe = SqliteStore(path, audit_key=AUDIT_KEY)
    await probe.open()
    await probe.close()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    store = SqliteStore(path, audit_key=AUDIT_KEY, max_pages=pages + AUDIT_RESERVE_PAGES + room)
    await store.open()
    return store


async def fill(store: SqliteStore) -> int:
    for n in range(1000):
        try:
            await store.commit(WriteBatch(writes=[write(n)]))
        except StoreFull:
            return n
    raise AssertionError("the page limit was never reached")


async def test_a_write_that_does_not_fit_fails_alone(tmp_path: Path) -> None:
    store = await limited_store(tmp_path, room=8)
    try:
        # in one group commit, if they arrive together: only the big one fails
        results = await asyncio.gather(
            store.commit(WriteBatch(writes=[write(1, size=100)])),
            store.commit(WriteBatch(writes=[write(2, size=200_000)])),
            store.commit(WriteBatch(writes=[write(3, size=100)], audit=events("c", 2))),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None, results
        assert isinstance(results[1], StoreFull)
        assert await store.read("Patient", "p1") is not None
        assert await store.read("Patient", "p2") is None
        assert await store.read("Patient", "p3") is not None
    finally:
        await store.close()


async def test_full_store_refuses_writes_keeps_audit_and_reuses_freed_pages(
    tmp_path: Path,
) -> None:
    store = await limited_store(tmp_path, room=8)
    try:
        written = await fill(store)
        assert written > 0
        with pytest.raises(StoreFull):
            await store.ping()
        for n in range(5):  # reads' AuditEvents go on in the reserve
            await store.commit(WriteBatch(audit=events(f"r{n}", 100)))
        records = [r async for r in store.iter_audit()]
        assert len(records) == 500
        assert verify(records, key=AUDIT_KEY).ok
        with pytest.raises(StoreFull):
            await store.commit(WriteBatch(writes=[write(5000)]))

        freer = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        freer.execute("DELETE FROM history WHERE id IN ('p0', 'p1', 'p2')")  # frees pages
        freer.close()
        await store.ping()
        await store.commit(WriteBatch(writes=[write(5000)]))
        assert await store.read("Patient", "p5000") is not None
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "store.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_nothing_commits_while_the_file_is_not_at_its_path(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db", audit_key=AUDIT_KEY)
    await store.open()
    try:
        await store.commit(WriteBatch(writes=[write(1)]))
        os.rename(tmp_path / "store.db", tmp_path / "elsewhere.db")
        with pytest.raises(StoreUnavailable, match="moved, replaced or removed"):
            await store.commit(WriteBatch(writes=[write(2)]))
        with pytest.raises(StoreUnavailable, match="moved, replaced or removed"):
            await store.commit(WriteBatch(audit=events("r", 1)))
        with pytest.raises(StoreUnavailable):
            await store.ping()
        os.rename(tmp_path / "elsewhere.db", tmp_path / "store.db")
        await store.ping()
        await store.commit(WriteBatch(writes=[write(2)]))
        assert await store.read("Patient", "p2") is not None
    finally:
        await store.close()


def test_sqlite_errors_map_by_cause() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    assert isinstance(map_error(full), StoreFull)
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    readonly.sqlite_errorname = "SQLITE_READONLY_DBMOVED"  # type: ignore[attr-defined]
    mapped = map_error(readonly)
    assert type(mapped) is StoreUnavailable and "read-only" in str(mapped)
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorname = "SQLITE_IOERR_WRITE"  # type: ignore[attr-defined]
    assert "disk I/O error" in str(map_error(io))
    assert isinstance(map_error(OSError(28, "No space left on device")), StoreFull)
