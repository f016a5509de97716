"""The store runs out of space (SQLite page limit standing in for a full disk).

The server runs with ``MEDICORE_SQLITE_MAX_PAGES`` (test-only) a little above the file's
size; the file also holds a ballast table the test drops to "free space". While full:
writes get 507 OperationOutcomes, HL7 gets AE, reads keep working (their AuditEvents use
the pages kept back for them), /health/ready says the store is full. After the ballast
is dropped writes resume with no restart; the file is intact and the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from fhir_server.hl7.client import MllpClient, ack_code
from fhir_server.storage.sqlite_engine import AUDIT_RESERVE_PAGES
from tests.e2e.conftest import free_port
from tests.e2e.fault_helpers import audit_verify, report, total
from tests.e2e.hl7_conftest import start_hl7_server
from tests.integration.hl7.messages import oru_r01

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

ROOM_PAGES = 60  # for writes above the file's size once the schema is in
BALLAST_BYTES = 2 * 1024 * 1024


def sql(path: Path, statement: str) -> object:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        row = conn.execute(statement).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def send(port: int, message: bytes) -> str | None:
    async def one() -> str | None:
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            return ack_code(await client.send(message))

    return asyncio.run(one())


def test_full_store_gives_507_reads_work_and_writes_resume(tmp_path: Path) -> None:
    db = tmp_path / "e2e.db"
    mllp_port = free_port()
    start_hl7_server(tmp_path, mllp_port).stop()  # the schema, then the file's size
    sql(db, "CREATE TABLE ballast (x BLOB)")
    sql(db, f"INSERT INTO ballast VALUES (zeroblob({BALLAST_BYTES}))")
    limit = int(str(sql(db, "PRAGMA page_count"))) + AUDIT_RESERVE_PAGES + ROOM_PAGES
    server = start_hl7_server(tmp_path, mllp_port, env={"MEDICORE_SQLITE_MAX_PAGES": str(limit)})
    try:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            created: list[str] = []
            full: httpx.Response | None = None
            for n in range(2000):  # ~10 fit in a page with their index rows and audit
                answer = http.post("/fhir/Patient", json=big_patient(n))
                if answer.status_code != 201:
                    full = answer
                    break
                created.append(answer.headers["Location"])
            assert full is not None and full.status_code == 507, full and full.text
            assert full.json()["issue"][0]["code"] == "no-store"
            assert send(mllp_port, oru_r01("FULL-1", "MRN-FULL")) == "AE"
            reads = [http.get(loc).status_code for loc in created[-20:]]
            assert reads == [200] * len(reads)
            assert total(http, "Patient?_summary=count") == len(created)
            ready = http.get("/health/ready")
            assert ready.status_code == 503
            assert "store full" in ready.json()["checks"]["store"]["message"]
            assert http.post("/fhir/Patient", json=big_patient(-1)).status_code == 507

            sql(db, "DROP TABLE ballast")  # space freed: the pages go to the freelist
            assert http.post("/fhir/Patient", json=big_patient(-2)).status_code == 201
            assert send(mllp_port, oru_r01("FULL-1", "MRN-FULL")) == "AA"
            assert http.get("/health/ready").status_code == 200
            assert total(http, "Patient?identifier=MRN-FULL&_summary=count") == 1
            assert total(http, "Patient?_summary=count") == len(created) + 2
    finally:
        server.stop()
    assert sql(db, "PRAGMA integrity_check") == "ok"
    assert sql(tmp_path / "e2e.db.audit-index", "PRAGMA integrity_check") == "ok"
    records = audit_verify(tmp_path, f"sqlite:///{db}")
    report(
        f"SQLite full (page limit): after {len(created)} creates writes got 507, HL7 AE,"
        f" reads 200 (their audit uses {AUDIT_RESERVE_PAGES} reserved pages), /health/ready"
        f" 503 'store full'; space freed: writes and the AE'd message accepted, no restart;"
        f" integrity_check ok, audit chain verified ({records} records)"
    )


def big_patient(n: int) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:medicore:full", "value": f"F{n}"}],
        "name": [{"family": "Full", "given": ["Disk"] * 20}],
    }
