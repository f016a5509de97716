"""The store contract, run identically against SQLite (a real file) and MongoDB."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from audit.events import AccessRecord, Interaction, build_audit_event
from fhir_server.search.extract import extract_index
from fhir_server.search.parse import parse_search
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import (
    ConditionalClaim,
    ConditionalConflict,
    RecordChanged,
    RecordExists,
    RecordWrite,
    Store,
    VersionConflict,
    VersionWrite,
    WriteBatch,
)
from fhir_server.storage.sqlite import SqliteStore

REGISTRY = SearchRegistry.default()


def patient(pid: str, version: int, *, mrn: str = "A1", family: str = "Kim") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": str(version), "lastUpdated": f"2026-01-0{version}T00:00:00+00:00"},
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": family}],
    }


def write(resource: dict[str, Any], *, expected: int, deleted: bool = False) -> VersionWrite:
    version = int(resource["meta"]["versionId"])
    return VersionWrite(
        resource_type=resource["resourceType"],
        id=resource["id"],
        version=version,
        expected_version=expected,
        last_updated=resource["meta"]["lastUpdated"],
        method="DELETE" if deleted else ("POST" if expected == 0 else "PUT"),
        body=None if deleted else orjson.dumps(resource),
        index=None if deleted else extract_index(resource, REGISTRY),
        deleted=deleted,
    )


def query(resource_type: str, **params: str) -> Any:
    return parse_search(resource_type, list(params.items()), REGISTRY, base_url="")


async def test_create_read_vread(store: Store) -> None:
    await store.commit(WriteBatch(writes=[write(patient("p1", 1), expected=0)]))
    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 1 and not current.deleted
    assert orjson.loads(current.body or b"")["name"][0]["family"] == "Kim"
    old = await store.vread("Patient", "p1", 1)
    assert old is not None and (old.version, old.body, old.method) == (1, current.body, "POST")
    assert await store.read("Patient", "missing") is None
    assert await store.vread("Patient", "p1", 2) is None


async def test_update_keeps_history_and_delete_is_a_tombstone(store: Store) -> None:
    await store.commit(WriteBatch(writes=[write(patient("p1", 1), expected=0)]))
    await store.commit(WriteBatch(writes=[write(patient("p1", 2, family="Lee"), expected=1)]))
    await store.commit(WriteBatch(writes=[write(patient("p1", 3), expected=2, deleted=True)]))
    current = await store.read("Patient", "p1")
    assert current is not None and current.deleted and current.version == 3 and current.body is None
    old = await store.vread("Patient", "p1", 1)
    assert old is not None and orjson.loads(old.body or b"")["name"][0]["family"] == "Kim"
    page = await store.history(resource_type="Patient", resource_id="p1")
    assert [(e.version, e.method) for e in page.entries] == [(3, "DELETE"), (2, "PUT"), (1, "POST")]
    assert await store.counts() == {}


async def test_stale_version_is_refused_and_nothing_is_written(store: Store) -> None:
    await store.commit(WriteBatch(writes=[write(patient("p1", 1), expected=0)]))
    batch = WriteBatch(
        writes=[write(patient("p2", 1), expected=0), write(patient("p1", 2), expected=5)]
    )
    with pytest.raises(VersionConflict):
        await store.commit(batch)
    assert await store.read("Patient", "p2") is None  # all or nothing
    with pytest.raises(VersionConflict):
        await store.commit(WriteBatch(writes=[write(patient("p1", 1), expected=0)]))


async def test_parallel_updates_of_one_version_let_exactly_one_win(store: Store) -> None:
    await store.commit(WriteBatch(writes=[write(patient("p1", 1), expected=0)]))
    attempts = [
        store.commit(WriteBatch(writes=[write(patient("p1", 2, family=f"F{i}"), expected=1)]))
        for i in range(8)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, VersionConflict) for r in results if r is not None)
    page = await store.history(resource_type="Patient", resource_id="p1")
    assert [e.version for e in page.entries] == [2, 1]


async def test_history_pages_newest_first_with_cursor(store: Store) -> None:
    for i in range(5):
        await store.commit(WriteBatch(writes=[write(patient(f"p{i}", 1), expected=0)]))
    first = await store.history(resource_type="Patient", count=2)
    assert [e.id for e in first.entries] == ["p4", "p3"] and first.next_cursor
    second = await store.history(resource_type="Patient", count=2, cursor=first.next_cursor)
    assert [e.id for e in second.entries] == ["p2", "p1"]
    third = await store.history(resource_type="Patient", count=2, cursor=second.next_cursor)
    assert [e.id for e in third.entries] == ["p0"] and third.next_cursor is None
    since = await store.history(since="2026-01-02T00:00:00+00:00")
    assert since.entries == []


async def test_search_finds_current_versions_only(store: Store) -> None:
    await store.commit(WriteBatch(writes=[write(patient("p1", 1, mrn="X"), expected=0)]))
    await store.commit(WriteBatch(writes=[write(patient("p1", 2, mrn="Y"), expected=1)]))
    assert await store.count_matches(query("Patient", identifier="urn:mrn|X"), limit=2) == []
    found = await store.count_matches(query("Patient", identifier="urn:mrn|Y"), limit=2)
    assert [(r.id, r.version) for r in found] == [("p1", 2)]
    await store.commit(WriteBatch(writes=[write(patient("p1", 3), expected=2, deleted=True)]))
    assert await store.count_matches(query("Patient", identifier="urn:mrn|Y"), limit=2) == []


async def test_conditional_claim_blocks_a_second_matching_create(store: Store) -> None:
    criteria = query("Patient", identifier="urn:mrn|Z")

    def claim(pid: str) -> WriteBatch:
        return WriteBatch(
            writes=[write(patient(pid, 1, mrn="Z"), expected=0)],
            claims=[ConditionalClaim("Patient?identifier=urn%3Amrn%7CZ", criteria, "Patient", pid)],
        )

    await store.commit(claim("a"))
    with pytest.raises(ConditionalConflict):
        await store.commit(claim("b"))
    assert await store.read("Patient", "b") is None


# Races are repeated: a one-in-six failure escapes 25 rounds with odds below 1 in 95.
RACE_ROUNDS = 25


async def test_parallel_claims_create_exactly_one(store: Store) -> None:
    for round_ in range(RACE_ROUNDS):
        mrn = f"P{round_}"
        criteria = query("Patient", identifier=f"urn:mrn|{mrn}")
        batches = [
            WriteBatch(
                writes=[write(patient(f"c{round_}-{i}", 1, mrn=mrn), expected=0)],
                claims=[
                    ConditionalClaim(
                        f"Patient?identifier={mrn}", criteria, "Patient", f"c{round_}-{i}"
                    )
                ],
            )
            for i in range(6)
        ]
        results = await asyncio.gather(*(store.commit(b) for b in batches), return_exceptions=True)
        assert sum(r is None for r in results) == 1, (round_, results)
        assert all(isinstance(r, ConditionalConflict) for r in results if r is not None)
        assert len(await store.count_matches(criteria, limit=10)) == 1, round_


async def test_parallel_updates_race_repeatedly(store: Store) -> None:
    for round_ in range(RACE_ROUNDS):
        pid = f"u{round_}"
        await store.commit(WriteBatch(writes=[write(patient(pid, 1), expected=0)]))
        attempts = [
            store.commit(WriteBatch(writes=[write(patient(pid, 2, family=f"F{i}"), expected=1)]))
            for i in range(6)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(r is None for r in results) == 1, (round_, results)
        assert all(isinstance(r, VersionConflict) for r in results if r is not None), results


async def test_records_commit_with_the_batch_and_insert_only_is_enforced(store: Store) -> None:
    inbox = RecordWrite("hl7_inbox", "LAB|0001", {"status": "received", "size": 120})
    await store.commit(WriteBatch(records=[inbox]))
    assert await store.get_record("hl7_inbox", "LAB|0001") == {"status": "received", "size": 120}
    with pytest.raises(RecordExists):
        await store.commit(
            WriteBatch(
                records=[RecordWrite("hl7_inbox", "LAB|0001", {"status": "x"}, if_absent=True)]
            )
        )
    failing = WriteBatch(
        writes=[write(patient("r1", 1), expected=0)],
        records=[RecordWrite("hl7_inbox", "LAB|0001", {"status": "x"}, if_absent=True)],
    )
    with pytest.raises(RecordExists):
        await store.commit(failing)
    assert await store.read("Patient", "r1") is None  # the resource write was undone too
    done = WriteBatch(
        writes=[write(patient("r1", 1), expected=0)],
        records=[RecordWrite("hl7_inbox", "LAB|0001", {"status": "processed", "size": 120})],
    )
    await store.commit(done)
    assert (await store.get_record("hl7_inbox", "LAB|0001") or {})["status"] == "processed"


async def test_find_and_count_records(store: Store) -> None:
    records = [
        RecordWrite("hl7_inbox", f"k{i}", {"status": "failed" if i % 2 else "processed", "n": i})
        for i in range(7)
    ]
    await store.commit(
        WriteBatch(records=[*records, RecordWrite("user", "k1", {"status": "failed"})])
    )
    failed = await store.find_records("hl7_inbox", where={"status": "failed"})
    assert [key for key, _ in failed] == ["k1", "k3", "k5"]
    assert await store.count_records("hl7_inbox", where={"status": "failed"}) == 3
    assert await store.count_records("hl7_inbox") == 7
    page = await store.find_records("hl7_inbox", after="k4", limit=2)
    assert [key for key, _ in page] == ["k5", "k6"]
    await store.commit(WriteBatch(records=[RecordWrite("hl7_inbox", "k1", None)]))
    assert await store.get_record("hl7_inbox", "k1") is None


@pytest.mark.parametrize("field", ["a.b", "$where", "status'", "n²", ""])
async def test_record_filters_take_plain_field_names_only(store: Store, field: str) -> None:
    with pytest.raises(ValueError):
        await store.find_records("hl7_inbox", where={field: "x"})
    with pytest.raises(ValueError):
        await store.count_records("hl7_inbox", where={field: "x"})


def audit_event(n: int) -> dict[str, Any]:
    record = AccessRecord(
        interaction=Interaction.READ,
        recorded=datetime(2026, 11, 26, 10, n, tzinfo=UTC),
        status=200,
        resource_type="Patient",
        resource_id=f"p{n}",
    )
    return build_audit_event(record, server_id="medicore-test", event_id=f"backlog-{n}")


async def test_audit_backlog_counts_what_is_not_searchable_yet(store: Store) -> None:
    assert await store.audit_backlog() == 0
    await store.commit(WriteBatch(audit=[audit_event(0), audit_event(1)]))
    await store.commit(WriteBatch(audit=[audit_event(2)]))
    assert await store.audit_backlog() == 3
    assert await store.index_audit(registry=REGISTRY, limit=2) == 2
    assert await store.audit_backlog() == 1
    assert await store.index_audit(registry=REGISTRY) == 1
    assert await store.audit_backlog() == 0


async def test_indexing_stops_at_the_position_asked_for(store: Store) -> None:
    await store.commit(WriteBatch(audit=[audit_event(n) for n in range(4)]))
    assert await store.index_audit(registry=REGISTRY, upto=2) == 2
    assert await store.index_audit(registry=REGISTRY, upto=2) == 0
    assert await store.audit_backlog() == 2


async def test_an_unreadable_audit_record_is_skipped_not_a_dead_end(store: Store) -> None:
    """A row forged into the store (not an AuditEvent) is left out of the search index;
    indexing goes on past it (``medicore audit verify`` reports the row)."""
    await store.commit(WriteBatch(audit=[audit_event(0)]))
    forged = ("forged", "2026-11-26T10:00:00Z", "x", "y", "not json")
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                "INSERT INTO audit (position, event_id, recorded, prev_hash, hash, event)"
                " VALUES (2, ?, ?, ?, ?, ?)",
                forged,
            )
    else:
        keys = ("event_id", "recorded", "prev_hash", "hash", "event")
        await store.db.audit.insert_one({"_id": 2, **dict(zip(keys, forged, strict=True))})  # type: ignore[attr-defined]
    await store.commit(WriteBatch(audit=[audit_event(3)]))
    assert await store.index_audit(registry=REGISTRY) == 3
    assert await store.audit_backlog() == 0
    found = await store.search(query("AuditEvent", _count="10"))
    assert sorted(m.id for m in found.matches) == ["backlog-0", "backlog-3"]


def test_the_database_named_in_the_uri_is_the_one_used() -> None:
    from fhir_server.storage.mongo import MongoStore

    named = MongoStore.from_uri("mongodb://127.0.0.1:1/hospital_a?replicaSet=rs0")
    assert named.db.name == "hospital_a"
    unnamed = MongoStore.from_uri("mongodb://127.0.0.1:1/?replicaSet=rs0", database="fallback")
    assert unnamed.db.name == "fallback"


async def test_a_compare_and_set_record_write_commits_only_over_what_it_expects(
    store: Store,
) -> None:
    key = "LAB|0002"
    await store.commit(
        WriteBatch(records=[RecordWrite("hl7_inbox", key, {"status": "received", "attempts": 0})])
    )
    settle = RecordWrite(
        "hl7_inbox",
        key,
        {"status": "processed", "attempts": 1},
        expect={"status": "received", "attempts": 0},
    )
    late = WriteBatch(
        writes=[write(patient("cas1", 1), expected=0)],
        records=[settle],
    )
    await store.commit(WriteBatch(records=[settle]))
    with pytest.raises(RecordChanged):
        await store.commit(late)  # what it expected is gone: nothing of the batch commits
    assert await store.read("Patient", "cas1") is None
    assert await store.get_record("hl7_inbox", key) == {"status": "processed", "attempts": 1}
    with pytest.raises(RecordChanged):
        await store.commit(
            WriteBatch(records=[RecordWrite("hl7_inbox", "absent", {}, expect={"status": "x"})])
        )
