"""Audit-only commits on SQLite: one autocommitted statement sealed after a remembered head.

Pins: two stores (as two server processes) appending to one file in turns, each with a
head the other has moved, leave one unbroken chain; audit-only and mixed batches (a
write with its AuditEvent) interleave without a fork; a batch larger than one
statement takes the transactional path and still chains.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.chain import verify
from audit.events import AccessRecord, Interaction, build_audit_event
from fhir_server.storage import sqlite_audit
from fhir_server.storage.base import StoreUnavailable, VersionWrite, WriteBatch
from fhir_server.storage.sqlite import SqliteStore
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


async def test_two_stores_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    first, second = (SqliteStore(tmp_path / "shared.db", audit_key=AUDIT_KEY) for _ in "ab")
    await first.open()
    await second.open()
    try:
        for a, b in zip(events("a", 6), events("b", 6), strict=True):
            await first.commit(WriteBatch(audit=[a]))  # each remembers a head the other moved
            await second.commit(WriteBatch(audit=[b]))
        racing = [(store, e) for store, p in ((first, "x"), (second, "y")) for e in events(p, 5)]
        await asyncio.gather(*(store.commit(WriteBatch(audit=[e])) for store, e in racing))
        ids = await chain_ids(first)
        assert ids[:12] == [f"{p}-{n}" for n in range(6) for p in "ab"]
        assert len(ids) == len(set(ids)) == 22
    finally:
        await first.close()
        await second.close()


async def test_mixed_and_large_batches_chain_after_audit_only_ones(tmp_path: Path) -> None:
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
        await store.commit(WriteBatch(audit=events("s", 1)))
        large = events("l", sqlite_audit.ALONE_LIMIT + 1)
        await store.commit(WriteBatch(audit=large))
        await store.commit(WriteBatch(audit=events("t", 1)))
        ids = await chain_ids(store)
        assert ids[:5] == ["r-0", "r-1", "w-0", "s-0", "l-0"]
        assert ids[-1] == "t-0" and len(ids) == 5 + sqlite_audit.ALONE_LIMIT + 1
    finally:
        await store.close()


async def test_a_tail_that_never_matches_fails_the_commit_not_the_writer(tmp_path: Path) -> None:
    """A forged last row (a BLOB hash never equals text) must not hold the writer thread:
    the commit fails with StoreUnavailable (a 503), and other writes still go through."""
    store = SqliteStore(tmp_path / "forged.db", audit_key=AUDIT_KEY)
    await store.open()
    try:
        await store.commit(WriteBatch(audit=events("a", 1)))
        with sqlite3.connect(tmp_path / "forged.db") as conn:
            conn.execute(
                "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
                " VALUES (2, 'forged', '2026-11-26T10:00:00Z', 'x', X'00', '{}')"
            )
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.commit(WriteBatch(audit=events("b", 1))), timeout=10)
        assert await store.ping() is None  # the writer thread is free
    finally:
        await store.close()
