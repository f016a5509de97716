"""The AuditEvent index file (``<store>.audit-index``), on real SQLite files.

Pins: chunked indexing makes every recorded event searchable exactly once; a store file
restored from another chain is re-indexed from scratch (no stale events), while one that
only grew (a newer backup of the same chain) is extended, not rebuilt; two indexers on
one file never index a record twice; ``medicore audit index`` reports what it indexed;
and a deleted index file is rebuilt from the chain.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.events import AccessRecord, Interaction, build_audit_event
from fhir_server import cli
from fhir_server.maintenance.sqlite_backup import restore, snapshot
from fhir_server.search.parse import parse_search
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from fhir_server.storage.sqlite_audit_index import AuditIndexFile, index_path
from tests.conftest import AUDIT_KEY

REGISTRY = SearchRegistry.default()
START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def audit_event(event_id: str, n: int) -> dict[str, Any]:
    record = AccessRecord(
        interaction=Interaction.READ,
        recorded=START + timedelta(seconds=n),
        status=200,
        user_id="doctor001",
        resource_type="Patient",
        resource_id=f"p{n}",
    )
    return build_audit_event(record, server_id="medicore-test", event_id=event_id)


async def opened(path: Path) -> SqliteStore:
    store = SqliteStore(path, audit_key=AUDIT_KEY)
    await store.open()
    return store


async def record(path: Path, ids: list[str]) -> None:
    """Record one audit event per id (one commit each) and close the store."""
    store = await opened(path)
    try:
        for n, event_id in enumerate(ids):
            await store.commit(WriteBatch(audit=[audit_event(event_id, n)]))
    finally:
        await store.close()


async def index_all(store: SqliteStore, *, limit: int = 1000) -> list[int]:
    """Every ``index_audit`` result up to and including the first 0."""
    counts = [await store.index_audit(registry=REGISTRY, limit=limit)]
    while counts[-1]:
        counts.append(await store.index_audit(registry=REGISTRY, limit=limit))
    return counts


async def searchable_ids(store: SqliteStore) -> list[str]:
    """The ids of all searchable AuditEvents, duplicates kept, in rid (chain) order."""
    params = [("_count", "1000"), ("_total", "accurate")]
    result = await store.search(parse_search("AuditEvent", params, REGISTRY, base_url=""))
    ids = [m.id for m in result.matches]
    assert result.total == len(ids)
    return ids


async def count(store: SqliteStore, **params: str) -> int | None:
    query = parse_search(
        "AuditEvent", [*params.items(), ("_summary", "count")], REGISTRY, base_url=""
    )
    return (await store.search(query)).total


def names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, n + 1)]


async def test_chunks_index_every_event_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    ids = names("ev-", 7)
    await record(path, ids)
    store = await opened(path)
    try:
        assert await searchable_ids(store) == []  # recorded, not yet searchable
        assert await index_all(store, limit=3) == [3, 3, 1, 0]
        assert await searchable_ids(store) == ids
        assert await count(store) == 7
        for event_id in ids:
            assert await count(store, _id=event_id) == 1
        assert await index_all(store, limit=3) == [0]
    finally:
        await store.close()


@pytest.mark.parametrize("b_events", [3, 7], ids=["shorter-chain", "longer-chain"])
async def test_restored_other_chain_is_reindexed_from_scratch(
    tmp_path: Path, b_events: int
) -> None:
    """A shorter chain lacks the watermark's position; a longer one has it, another hash."""
    a_path, b_path = tmp_path / "a" / "store.db", tmp_path / "b" / "store.db"
    await record(a_path, names("a-", 5))
    store = await opened(a_path)
    try:
        assert await index_all(store) == [5, 0]
    finally:
        await store.close()
    b_ids = names("b-", b_events)
    await record(b_path, b_ids)
    snapshot(b_path, tmp_path / "b.snapshot")
    restore(tmp_path / "b.snapshot", a_path)

    store = await opened(a_path)
    try:
        assert await index_all(store) == [b_events, 0]
        assert await searchable_ids(store) == b_ids
    finally:
        await store.close()


async def test_newer_backup_of_same_chain_is_extended_not_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    ids = names("ev-", 5)
    await record(path, ids[:3])
    snapshot(path, tmp_path / "old.snapshot")
    store = await opened(path)
    try:
        for n, event_id in enumerate(ids[3:], start=3):
            await store.commit(WriteBatch(audit=[audit_event(event_id, n)]))
    finally:
        await store.close()
    snapshot(path, tmp_path / "new.snapshot")

    restore(tmp_path / "old.snapshot", path)
    store = await opened(path)
    try:
        assert await index_all(store) == [3, 0]
    finally:
        await store.close()
    restore(tmp_path / "new.snapshot", path)
    store = await opened(path)
    try:
        assert await searchable_ids(store) == ids[:3]  # still indexed before catching up
        assert await index_all(store) == [2, 0]  # only the new records
        assert await searchable_ids(store) == ids
    finally:
        await store.close()


async def test_two_indexers_on_one_file_index_each_record_once(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    ids = names("ev-", 60)
    await record(path, ids)
    indexers = [AuditIndexFile(path), AuditIndexFile(path)]  # the server and the indexer
    start = threading.Barrier(len(indexers))

    def run(indexer: AuditIndexFile) -> list[int]:
        start.wait()
        counts: list[int] = []
        while chunk := indexer.index_chunk(REGISTRY, limit=2):
            counts.append(chunk)
            time.sleep(0.001)  # paced like the server's indexer: the two interleave
        return counts

    try:
        with ThreadPoolExecutor(max_workers=len(indexers)) as pool:
            results = list(pool.map(run, indexers))
        assert [indexer.index_chunk(REGISTRY) for indexer in indexers] == [0, 0]
    finally:
        for indexer in indexers:
            indexer.close()
    assert sum(map(sum, results)) == 60
    store = await opened(path)
    try:
        assert await searchable_ids(store) == ids
    finally:
        await store.close()


def test_cli_indexes_what_is_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDICORE_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "store.db"
    asyncio.run(record(path, names("ev-", 4)))
    argv = ["audit", "index", "--store", f"sqlite:///{path}"]

    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"indexed": 4}
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"indexed": 0}


async def test_deleted_index_file_is_rebuilt_from_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    ids = names("ev-", 4)
    await record(path, ids)
    store = await opened(path)
    try:
        assert await index_all(store) == [4, 0]
    finally:
        await store.close()
    for file in path.parent.glob(index_path(path).name + "*"):  # with any -wal/-shm
        file.unlink()

    store = await opened(path)
    try:
        assert await searchable_ids(store) == []
        assert await index_all(store) == [4, 0]
        assert await searchable_ids(store) == ids
    finally:
        await store.close()


async def test_restored_empty_chain_empties_the_index(tmp_path: Path) -> None:
    path, empty = tmp_path / "store.db", tmp_path / "empty.db"
    await record(path, names("ev-", 3))
    await record(empty, [])
    snapshot(empty, tmp_path / "empty.snapshot")
    store = await opened(path)
    try:
        assert await index_all(store) == [3, 0]
    finally:
        await store.close()
    restore(tmp_path / "empty.snapshot", path)
    store = await opened(path)
    try:
        await index_all(store)
        assert await searchable_ids(store) == []
    finally:
        await store.close()


async def test_unreadable_record_is_skipped_not_a_dead_end(tmp_path: Path) -> None:
    """A row that is not an AuditEvent (forged into the file) is left out of the index
    (``medicore audit verify`` reports it); indexing goes on past it."""
    path = tmp_path / "store.db"
    await record(path, names("ev-", 2))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
            " VALUES (3, 'forged', '2026-11-26T10:00:00Z', 'x', 'y', 'not json')"
        )
    store = await opened(path)
    try:
        await store.commit(WriteBatch(audit=[audit_event("ev-after", 9)]))
        assert await index_all(store) == [4, 0]
        assert await searchable_ids(store) == ["ev-1", "ev-2", "ev-after"]
        assert await store.audit_backlog() == 0
    finally:
        await store.close()
