"""Lookups by key run on the caller's thread, and on a reader thread when SQLite is busy."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fhir_server.storage.base import RecordWrite, StoreUnavailable, WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from fhir_server.storage.sqlite_engine import BUSY


async def _store_with_one_record(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    await store.commit(WriteBatch(records=[RecordWrite("test", "k1", {"n": 1})]))
    return store


async def test_a_lookup_by_key_runs_on_the_calling_thread(tmp_path: Path) -> None:
    store = await _store_with_one_record(tmp_path / "s.db")
    try:
        threads: list[str] = []

        def fetch(conn: sqlite3.Connection) -> int:
            threads.append(threading.current_thread().name)
            return int(conn.execute("SELECT count(*) FROM record").fetchone()[0])

        assert await store._lookup(fetch) == 1
        assert threads == [threading.current_thread().name]
        assert await store.get_record("test", "k1") == {"n": 1}
    finally:
        await store.close()


async def test_a_busy_lookup_is_sent_to_a_reader_thread(tmp_path: Path) -> None:
    store = await _store_with_one_record(tmp_path / "s.db")
    # A file another connection holds exclusively: reading it is SQLite's "busy".
    locked = tmp_path / "locked.db"
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    loop_thread = threading.current_thread().name
    tried: list[str] = []

    def lookup(conn: sqlite3.Connection) -> str:
        here = threading.current_thread().name
        tried.append(here)
        if here == loop_thread:
            other = sqlite3.connect(locked, isolation_level=None, timeout=0)
            try:
                other.execute("SELECT count(*) FROM t").fetchone()
            finally:
                other.close()
        return "answered"

    try:
        assert store._read_here(lookup) is BUSY  # the event loop thread never waits
        assert await store._lookup(lookup) == "answered"
        assert tried[0] == tried[1] == loop_thread and tried[2].startswith("sqlite-read")
    finally:
        holder.close()
        await store.close()


async def test_a_lookup_on_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = await _store_with_one_record(tmp_path / "s.db")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get_record("test", "k1")
