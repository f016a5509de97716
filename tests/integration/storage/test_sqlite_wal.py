"""The SQLite writer keeps the WAL bounded when passive checkpoints cannot reset it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from fhir_server.storage import sqlite_engine
from fhir_server.storage.base import RecordWrite, WriteBatch
from fhir_server.storage.sqlite import SqliteStore

LIMIT = 256 * 1024
NEVER = 1 << 40


def _wal_size(path: Path) -> int:
    return os.stat(f"{path}-wal").st_size


async def _fill(store: SqliteStore, start: int, count: int) -> None:
    for i in range(start, start + count):
        doc = {"status": "received", "blob": "x" * 4000}
        await store.commit(WriteBatch(records=[RecordWrite("test", f"k{i:05d}", doc)]))
    # The writer checks the WAL after answering a commit: one job more waits that out.
    await store._write(lambda conn: None)


async def _grow_wal_behind_a_snapshot(store: SqliteStore, path: Path) -> int:
    """Another process holds a read snapshot while 200 commits land: no automatic
    checkpoint can reset the WAL meanwhile. Returns the size it grew to."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM record").fetchone()
    await _fill(store, 0, 200)
    reader.execute("COMMIT")
    reader.close()
    return _wal_size(path)


async def test_an_oversized_wal_is_reset_and_cut_back(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = SqliteStore(path)
    store.wal_check_seconds = 0.0
    await store.open()
    try:
        store.wal_limit = NEVER  # the guard waits while the snapshot is held
        grown = await _grow_wal_behind_a_snapshot(store, path)
        assert grown > 2 * LIMIT
        store.wal_limit = LIMIT

        await _fill(store, 200, 2)

        assert _wal_size(path) <= LIMIT
        assert len(await store.find_records("test", limit=1000)) == 202
    finally:
        await store.close()


async def test_without_the_guard_the_wal_stays_large(tmp_path: Path) -> None:
    """The control: the same traffic with the limit out of reach leaves the file grown."""
    path = tmp_path / "wal.db"
    store = SqliteStore(path)
    store.wal_limit = NEVER
    store.wal_check_seconds = 0.0
    await store.open()
    try:
        grown = await _grow_wal_behind_a_snapshot(store, path)
        await _fill(store, 200, 2)
        assert _wal_size(path) >= grown > 2 * LIMIT
    finally:
        await store.close()


async def test_a_snapshot_held_for_long_does_not_hold_up_every_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a reader keeps an old snapshot, the forced checkpoint cannot finish; the writer
    backs off instead of waiting for it at every commit (counted, on a clock set by hand)."""
    path = tmp_path / "wal.db"
    store = SqliteStore(path)
    store.wal_check_seconds = 0.0
    moment = [1000.0]
    store.clock = lambda: moment[0]
    attempts: list[bool | None] = []
    real_truncate = sqlite_engine.truncate_wal

    def counted(*args: object, **kwargs: object) -> bool | None:
        attempts.append(real_truncate(*args, **kwargs))  # type: ignore[arg-type]
        return attempts[-1]

    monkeypatch.setattr(sqlite_engine, "truncate_wal", counted)
    await store.open()
    try:
        store.wal_limit = NEVER
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM record").fetchone()
        await _fill(store, 0, 200)

        def start_counting(conn: sqlite3.Connection) -> None:
            # On the writer thread, so after the check that follows the last fill commit.
            store.wal_limit = LIMIT
            moment[0] += 1  # the checks while filling were all allowed; now count
            attempts.clear()

        await store._write(start_counting)
        await _fill(store, 200, 20)  # the first check waits once, then the writer backs off
        assert attempts == [True]  # busy once; the other 19 commits did not wait
        moment[0] += 0.9
        await _fill(store, 220, 5)
        assert attempts == [True]  # still inside the back-off
        moment[0] += 1.2
        await _fill(store, 225, 1)
        assert attempts == [True, True]  # tried again, and the back-off doubles
        assert _wal_size(path) > LIMIT  # still held back by the snapshot
        reader.execute("COMMIT")
        reader.close()
    finally:
        await store.close()
