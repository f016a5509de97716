"""The restore drill: back up while writes continue, wipe, restore, prove all is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fhir_server.maintenance import Manifest, backup, register_restore_check, restore
from fhir_server.maintenance import jobs as maintenance_jobs
from fhir_server.maintenance.audit_check import verify_audit_chain
from fhir_server.maintenance.sqlite_backup import inventory
from fhir_server.storage.base import WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from tests.integration.ops import drill_data

AUDIT_KEY = "drill-audit-key-0123456789abcdef"


async def test_restore_drill_on_the_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDICORE_AUDIT_KEY", AUDIT_KEY)
    live = tmp_path / "data" / "medicore.db"
    uri = f"sqlite:///{live}"
    store = SqliteStore(live, audit_key=AUDIT_KEY.encode())
    await store.open()
    await drill_data.load(store)

    commits: list[tuple[float, str]] = []  # (time the commit returned, new resource id)
    stop = asyncio.Event()

    async def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            batch = WriteBatch(
                writes=[drill_data.version_write("Patient", f"w{n}", 1)],
                records=[drill_data.hl7_record(f"LIVE{n:05d}", "processed")],
                audit=[drill_data.audit_event(f"live-{n}")],
            )
            await store.commit(batch)
            commits.append((time.monotonic(), f"w{n}"))
            n += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(keep_writing())
    while len(commits) < 5:
        await asyncio.sleep(0.001)
    started = time.monotonic()
    result = await backup(uri, to=tmp_path / "backups", copy_dir=tmp_path / "offsite")
    finished = time.monotonic()
    await asyncio.sleep(0.02)
    stop.set()
    await writer
    await store.close()

    during = [c for c in commits if started <= c[0] <= finished]
    assert during, "no write committed while the backup ran: the drill proved nothing"
    before = {rid for t, rid in commits if t < started}

    source_versions = drill_data.history_rows(live)
    source_records = drill_data.records(live)

    # Wipe: the data volume is lost (file, WAL and shared-memory index).
    for suffix in ("", "-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    assert not live.exists()

    checked: list[str | None] = []

    async def audit_verified(store_uri: str, manifest: Manifest) -> str | None:
        problem = await verify_audit_chain(store_uri, manifest)  # what `medicore restore` runs
        checked.append(problem)
        return problem

    register_restore_check(audit_verified)
    try:
        restored = await restore(result.archive, uri)
    finally:
        maintenance_jobs._RESTORE_CHECKS.remove(audit_verified)
    assert checked == [None]  # the hook ran and the restored chain verified
    assert restored.warnings == []
    head = result.manifest.inventory.audit_head
    assert head is not None and head["position"] >= 300 + len(before)
    assert restored.restored.audit_head == head

    restored_versions = drill_data.history_rows(live)
    restored_records = drill_data.records(live)
    # Everything loaded before the backup and written before it started is back...
    loaded = {k for k in source_versions if not k[1].startswith("w")}
    assert loaded <= set(restored_versions)
    assert {("Patient", rid, 1) for rid in before} <= set(restored_versions)
    assert {k for k in source_records if k[1].startswith("MSG")} <= set(restored_records)
    # ...byte for byte, every version, and nothing that never existed.
    for key, row in restored_versions.items():
        assert source_versions[key] == row
    for record_key, doc in restored_records.items():
        assert source_records[record_key] == doc
    # The snapshot is one instant: each resource's versions are contiguous from 1, and each
    # live-written resource came with its HL7 record (they were committed together).
    by_resource: dict[tuple[str, str], list[int]] = {}
    for rtype, rid, version in restored_versions:
        by_resource.setdefault((rtype, rid), []).append(version)
    for versions in by_resource.values():
        assert sorted(versions) == list(range(1, len(versions) + 1))
    live_ids = {rid for _, rid, _ in restored_versions if rid.startswith("w")}
    live_msgs = {key for _, key in restored_records if key.startswith("LIVE")}
    assert {f"LIVE{int(rid[1:]):05d}" for rid in live_ids} == live_msgs

    # The restored file serves reads through the store, and counts match the manifest.
    assert inventory(live) == result.manifest.inventory
    reopened = SqliteStore(live, audit_key=AUDIT_KEY.encode())
    await reopened.open()
    try:
        counts = await reopened.counts()
        assert counts == result.manifest.inventory.resources
        current = await reopened.read("Patient", "p5")
        assert current is not None and current.version == 3
        assert current.body == source_versions[("Patient", "p5", 3)][-1]
        tomb = await reopened.read("Patient", "p10")
        assert tomb is not None and tomb.deleted
        old = await reopened.vread("Patient", "p5", 1)
        assert old is not None and old.body == source_versions[("Patient", "p5", 1)][-1]
        failed = await reopened.count_records("hl7_inbox", where={"status": "failed"})
        assert failed == len([n for n in range(300) if n % 7 == 0])
    finally:
        await reopened.close()

    # The second location holds a verified identical copy.
    assert result.copy is not None
    assert result.copy.read_bytes() == result.archive.read_bytes()
