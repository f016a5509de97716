"""The SQLite file goes away under load (moved off its path), then comes back.

While it is away: writes get 503 OperationOutcomes with Retry-After, HL7 gets AE, reads
(which are never answered unaudited) get 503 too, /health/ready fails naming the cause.
Nothing is acknowledged that is not in the file at the store's path. When the file is
back, service resumes with no restart; the file is intact and its audit chain verifies.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.fault_helpers import audit_verify, report, total
from tests.e2e.fault_load import SYSTEM, Load
from tests.e2e.hl7_conftest import start_hl7_server

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_sqlite_file_gone_gives_503_and_service_resumes(tmp_path: Path) -> None:
    db = tmp_path / "e2e.db"
    mllp_port = free_port()
    server = start_hl7_server(tmp_path, mllp_port)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            load = Load(server.base, mllp_port)
            load.wait("writes flow", lambda: len(load.created) >= 10 and load.acks["AA"] >= 3)
            os.rename(db, tmp_path / "moved-away.db")
            try:
                seen = len(load.refused), load.acks["AE"]
                load.wait(
                    "writes refused",
                    lambda: len(load.refused) >= seen[0] + 6 and load.acks["AE"] >= seen[1] + 2,
                )
                ready = http.get("/health/ready")
                read = http.get(f"/fhir/{next(iter(load.created.values())).split('/fhir/')[1]}")
            finally:
                os.rename(tmp_path / "moved-away.db", db)
            before = len(load.created), load.acks["AA"]
            load.wait(
                "service resumes",
                lambda: len(load.created) >= before[0] + 10 and load.acks["AA"] >= before[1] + 3,
            )
            load.stop()

            assert ready.status_code == 503
            store_check = ready.json()["checks"]["store"]
            assert store_check["status"] == "fail"
            assert "moved, replaced or removed" in store_check["message"]
            assert read.status_code == 503
            refusals = {r.status_code for r in load.refused.values()}
            assert refusals == {503}
            for answer in load.refused.values():
                assert answer.headers["Retry-After"] == "5"
                outcome = answer.json()
                assert outcome["resourceType"] == "OperationOutcome"
                assert outcome["issue"][0]["code"] == "transient"
            assert http.get("/health/ready").status_code == 200

            missing = [loc for loc in load.created.values() if http.get(loc).status_code != 200]
            assert missing == []
            stored_refused = [
                n
                for n in load.refused
                if total(http, f"Patient?identifier={SYSTEM}|L{n}&_summary=count")
            ]
            assert stored_refused == []
            acked = load.acked
            for n in acked:
                assert total(http, f"Patient?identifier=MRN-OUT{n}&_summary=count") == 1, n
            assert total(http, "Patient?_summary=count") == len(load.created) + len(acked)
    finally:
        server.stop()
    assert integrity(db) == "ok"
    records = audit_verify(tmp_path, f"sqlite:///{db}")
    report(
        f"SQLite file moved away under load: {len(load.refused)} writes answered 503 +"
        f" Retry-After, {load.acks['AE']} HL7 messages AE, /health/ready 503 naming the cause;"
        f" back in place: resumed without restart; {len(load.created)} creates and"
        f" {len(acked)} HL7 messages acknowledged, all stored, 0 refused ones stored;"
        f" integrity_check ok, audit chain verified ({records} records)"
    )
