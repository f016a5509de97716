"""Every stored column of an audit record is sealed: an edit to any of them, made directly
in the database, is named by verify (and ``medicore audit verify``) at its position."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from audit.chain import EMPTY_HEAD, GENESIS, LEGACY_LAYOUT, VerifyReport, canonical_json, verify
from audit.layout import mac
from fhir_server import cli
from fhir_server.storage.base import Store, WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from tests.conftest import AUDIT_KEY, make_store
from tests.integration.storage.test_audit_tamper import chain_of_five, event, sqlite_conn

# column -> (new value, the kind of break verify names at position 3)
EDITS: dict[str, tuple[Any, str]] = {
    "event_id": ("ev-X", "altered"),
    "recorded": ("2026-11-26T09:59:59.000000Z", "altered"),
    "prev_hash": ("f" * 64, "altered"),
    "hash": ("e" * 64, "altered"),
    "event": ('{"resourceType":"AuditEvent","id":"ev-3"}', "altered"),
    "layout": (LEGACY_LAYOUT, "altered"),
    "position": (30, "removed"),  # record 3 is gone from its place
}


async def set_column(store: Store, position: int, column: str, value: Any) -> None:
    """What someone with write access to the database (not the key) can do."""
    if isinstance(store, SqliteStore):
        sqlite_conn(store).execute(
            f"UPDATE audit SET {column} = ? WHERE position = ?", (value, position)
        )
        return
    audit = store.db.audit  # type: ignore[attr-defined]
    if column == "position":  # ``_id`` is immutable in MongoDB: move the document
        doc = await audit.find_one({"_id": position})
        await audit.delete_one({"_id": position})
        await audit.insert_one({**doc, "_id": value})
        return
    await audit.update_one({"_id": position}, {"$set": {column: value}})


async def report(store: Store) -> VerifyReport:
    records = [r async for r in store.iter_audit()]  # type: ignore[attr-defined]
    return verify(records, key=AUDIT_KEY)


async def test_records_are_stored_with_the_current_layout(store: Store) -> None:
    await chain_of_five(store)
    records = [r async for r in store.iter_audit()]  # type: ignore[attr-defined]
    assert [(r.layout, r.event_id, r.recorded) for r in records[:1]] == [
        (2, "ev-1", "2026-11-26T10:00:01.000000Z")
    ]
    assert (await report(store)).ok


@pytest.mark.parametrize("column", sorted(EDITS))
async def test_an_edited_column_is_named_with_its_position(store: Store, column: str) -> None:
    await chain_of_five(store)
    value, kind = EDITS[column]
    await set_column(store, 3, column, value)
    result = await report(store)
    assert result.problem is not None, column
    assert (result.problem.kind, result.problem.position) == (kind, 3)
    assert result.checked == 2


async def test_an_unknown_layout_is_named(store: Store) -> None:
    await chain_of_five(store)
    await set_column(store, 4, "layout", 3)
    result = await report(store)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.position) == ("altered", 4)
    assert "layout" in result.problem.detail


def test_medicore_audit_verify_names_an_edited_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(tmp_path / "store.db", audit_key=AUDIT_KEY)

    async def fill() -> None:
        await store.open()
        try:
            await chain_of_five(store)
        finally:
            await store.close()

    asyncio.run(fill())
    monkeypatch.setenv("MEDICORE_AUDIT_KEY", AUDIT_KEY.decode())
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli.main(["audit", "verify", "--store", uri]) == 0
    sqlite_conn(store).execute(
        "UPDATE audit SET recorded = '2020-01-01T00:00:00Z' WHERE position=2"
    )
    assert cli.main(["audit", "verify", "--store", uri]) == 1
    assert "BROKEN at position 2 (altered)" in capsys.readouterr().out


# A file written before layout 2 -------------------------------------------------------
_OLD_TABLE = """CREATE TABLE audit (
    position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, recorded TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event BLOB NOT NULL)"""


def old_file(path: Path, count: int) -> None:
    """An audit table as the previous release wrote it: layout-1 seals, no layout column."""
    conn = sqlite3.connect(path)
    conn.execute(_OLD_TABLE)
    prev = GENESIS
    for n in range(1, count + 1):
        body = canonical_json(event(n))
        digest = mac(
            LEGACY_LAYOUT,
            body,
            key=AUDIT_KEY,
            position=n,
            prev_hash=prev,
            event_id=None,
            recorded=None,
        )
        conn.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
            (n, f"ev-{n}", event(n)["recorded"], prev, digest, body),
        )
        prev = digest
    conn.commit()
    conn.close()


async def test_an_old_chain_still_verifies_and_grows_with_the_new_layout(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_file(path, 3)
    store = SqliteStore(path, audit_key=AUDIT_KEY)
    await store.open()
    try:
        await store.commit(WriteBatch(audit=[event(4), event(5)]))
        records = [r async for r in store.iter_audit()]
        assert [r.layout for r in records] == [1, 1, 1, 2, 2]
        assert verify(records, key=AUDIT_KEY).ok
    finally:
        await store.close()


@pytest.mark.parametrize("column", ["event_id", "recorded", "layout"])
async def test_an_old_records_columns_are_covered_too(tmp_path: Path, column: str) -> None:
    """Layout 1 did not seal event_id and recorded: they must still equal the sealed event."""
    path = tmp_path / "old.db"
    old_file(path, 3)
    store = SqliteStore(path, audit_key=AUDIT_KEY)
    await store.open()
    try:
        value = {"event_id": "ev-X", "recorded": "2020-01-01T00:00:00Z", "layout": 2}[column]
        await set_column(store, 2, column, value)
        result = await report(store)
    finally:
        await store.close()
    assert result.problem is not None
    assert (result.problem.kind, result.problem.position) == ("altered", 2)
    if column != "layout":
        assert "column differs from the sealed event" in result.problem.detail


@pytest.mark.mongo
async def test_a_mongo_document_without_layout_is_layout_1(tmp_path: Path) -> None:
    """Documents from before layout 2 carry no ``layout`` field and still verify."""
    store, drop = await make_store("mongo", tmp_path)
    await store.open()
    try:
        await _old_documents_then_new(store)
    finally:
        if drop is not None:
            await store.client.drop_database(drop)  # type: ignore[attr-defined]
        await store.close()


async def _old_documents_then_new(store: Store) -> None:
    prev = EMPTY_HEAD.hash
    for n in (1, 2):
        body = canonical_json(event(n))
        digest = mac(
            LEGACY_LAYOUT, body, key=AUDIT_KEY, position=n, prev_hash=prev, event_id=None,
            recorded=None,
        )  # fmt: skip
        await store.db.audit.insert_one(  # type: ignore[attr-defined]
            {
                "_id": n,
                "event_id": f"ev-{n}",
                "recorded": event(n)["recorded"],
                "prev_hash": prev,
                "hash": digest,
                "event": body.decode(),
            }
        )
        prev = digest
    await store.commit(WriteBatch(audit=[event(3)]))
    assert (await report(store)).ok
    await set_column(store, 1, "recorded", "2020-01-01T00:00:00Z")
    result = await report(store)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.position) == ("altered", 1)
