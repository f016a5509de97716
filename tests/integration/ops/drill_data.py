"""Loads a realistic embedded store for the backup tests: resources, versions, HL7 records."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson

from fhir_server.storage.base import RecordWrite, VersionWrite, WriteBatch
from fhir_server.storage.sqlite import SqliteStore

FAMILIES = ("Kim", "Lee", "Park", "Choi", "Jung")


def now() -> str:
    return datetime.now(UTC).isoformat()


def patient_body(pid: str, version: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "id": pid,
            "meta": {"versionId": str(version)},
            "identifier": [{"system": "urn:oid:1.2.410.100", "value": f"MRN-{pid}"}],
            "name": [{"family": FAMILIES[hash(pid) % 5], "given": [f"G{version}"]}],
            "text": {"status": "generated", "div": "<div>" + "x" * 400 + "</div>"},
        }
    )


def version_write(rtype: str, rid: str, version: int, *, deleted: bool = False) -> VersionWrite:
    return VersionWrite(
        resource_type=rtype,
        id=rid,
        version=version,
        expected_version=version - 1,
        last_updated=now(),
        method="DELETE" if deleted else ("POST" if version == 1 else "PUT"),
        body=None if deleted else patient_body(rid, version),
        index=None,
        deleted=deleted,
    )


def hl7_record(control_id: str, status: str) -> RecordWrite:
    return RecordWrite(
        kind="hl7_inbox",
        key=control_id,
        doc={"status": status, "type": "ORU^R01", "raw": f"MSH|^~\\&|LAB|{control_id}"},
    )


def audit_event(n: int | str) -> dict[str, object]:
    """A minimal AuditEvent as the store chains it (the shape is the audit package's)."""
    return {
        "resourceType": "AuditEvent",
        "id": f"ae-{n}",
        "recorded": now(),
        "action": "C",
        "outcome": "0",
    }


async def load(store: SqliteStore, *, patients: int = 300) -> None:
    """Patients with 1-3 versions, some deleted, HL7 inbox records and their AuditEvents."""
    batch = WriteBatch()
    for n in range(patients):
        batch.audit.append(audit_event(n))
        pid = f"p{n}"
        versions = 1 + n % 3
        for v in range(1, versions + 1):
            batch.writes.append(version_write("Patient", pid, v))
        if n % 10 == 0:
            batch.writes.append(version_write("Patient", pid, versions + 1, deleted=True))
        batch.records.append(hl7_record(f"MSG{n:05d}", "failed" if n % 7 == 0 else "processed"))
        if len(batch.writes) > 200:
            await store.commit(batch)
            batch = WriteBatch()
    await store.commit(batch)


def history_rows(path: Path) -> dict[tuple[str, str, int], tuple[object, ...]]:
    """Every stored version keyed by (type, id, version), read straight from the file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT rtype, id, version, last_updated, deleted, method, body FROM history"
        ).fetchall()
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def records(path: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {(k, key): doc for k, key, doc in conn.execute("SELECT kind, key, doc FROM record")}
