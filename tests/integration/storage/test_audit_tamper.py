"""Tampering with stored audit records, directly in each database, is named by verify."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from audit.chain import verify
from fhir_server.storage.base import Store, WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from tests.conftest import AUDIT_KEY


def event(n: int) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "id": f"ev-{n}",
        "type": {"code": "rest"},
        "recorded": f"2026-11-26T10:00:{n:02d}.000000Z",
        "agent": [{"requestor": True}],
        "source": {"observer": {"display": "medicore"}},
    }


async def chain_of_five(store: Store) -> None:
    for n in range(1, 6):
        await store.commit(WriteBatch(audit=[event(n)]))
    if isinstance(store, SqliteStore):  # chained from the journal before the file is edited
        await store.chain_journal()


async def report(store: Store) -> Any:
    records = [r async for r in store.iter_audit()]  # type: ignore[attr-defined]
    return verify(records, key=AUDIT_KEY)


def sqlite_conn(store: Store) -> sqlite3.Connection:
    conn = sqlite3.connect(store.path, isolation_level=None)  # type: ignore[attr-defined]
    # An attacker with file access can drop the guards; the chain still tells.
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


async def test_intact_chain_verifies(store: Store) -> None:
    await chain_of_five(store)
    result = await report(store)
    assert result.ok and result.checked == 5


async def test_sqlite_triggers_refuse_changes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "guarded.db", audit_key=AUDIT_KEY)
    await store.open()
    await chain_of_five(store)
    await store.close()
    conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE audit SET event = 'x' WHERE position = 2")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM audit WHERE position = 2")


async def _alter(store: Store) -> None:
    if hasattr(store, "path"):
        sqlite_conn(store).execute(
            "UPDATE audit SET event = replace(event, 'ev-3', 'ev-X') WHERE position = 3"
        )
    else:
        doc = await store.db.audit.find_one({"_id": 3})  # type: ignore[attr-defined]
        await store.db.audit.update_one(  # type: ignore[attr-defined]
            {"_id": 3}, {"$set": {"event": doc["event"].replace("ev-3", "ev-X")}}
        )


async def _delete(store: Store) -> None:
    if hasattr(store, "path"):
        sqlite_conn(store).execute("DELETE FROM audit WHERE position = 3")
    else:
        await store.db.audit.delete_one({"_id": 3})  # type: ignore[attr-defined]


async def _insert(store: Store) -> None:
    """A forged record slipped in after position 2, the later ones renumbered."""
    fake = '{"resourceType":"AuditEvent","id":"forged"}'
    if hasattr(store, "path"):
        conn = sqlite_conn(store)
        rows = conn.execute(
            "SELECT * FROM audit WHERE position >= 3 ORDER BY position DESC"
        ).fetchall()
        for row in rows:
            conn.execute("UPDATE audit SET position = ? WHERE position = ?", (row[0] + 1, row[0]))
        conn.execute(
            "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event, layout)"
            " VALUES (3, 'forged', '2026-11-26T10:00:02.5Z', ?, ?, ?, 2)",
            (rows[-1][3], "0" * 64, fake),
        )
    else:
        db = store.db  # type: ignore[attr-defined]
        docs = await db.audit.find({"_id": {"$gte": 3}}).sort("_id", -1).to_list(None)
        for doc in docs:
            await db.audit.delete_one({"_id": doc["_id"]})
            await db.audit.insert_one({**doc, "_id": doc["_id"] + 1})
        await db.audit.insert_one(
            {
                "_id": 3,
                "event_id": "forged",
                "recorded": "x",
                "prev_hash": docs[-1]["prev_hash"],
                "hash": "0" * 64,
                "event": fake,
            }
        )


@pytest.mark.parametrize(
    ("tamper", "kind"), [(_alter, "altered"), (_delete, "removed"), (_insert, "inserted")]
)
async def test_tampering_is_named_with_its_position(store: Store, tamper: Any, kind: str) -> None:
    await chain_of_five(store)
    await tamper(store)
    result = await report(store)
    assert not result.ok
    assert result.problem.kind == kind
    assert result.problem.position == 3
