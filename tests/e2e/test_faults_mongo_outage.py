"""The MongoDB server dies under load, and a new one comes up on the same address.

A dedicated SecantusDB (the suite's real wire-protocol server, ``tests/mongo_server.py``)
on a free port, so that stopping it touches no other test. It keeps its data in memory:
what was written before it died is gone with it, so this tests the outage and the
recovery of new writes, not durability across the database's own crash (a real mongod
keeps its data; see docs/operations/runbook.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.fault_helpers import audit_verify, report, total, wait_for
from tests.e2e.fault_load import Load
from tests.e2e.hl7_conftest import start_hl7_server
from tests.mongo_server import _venv_bin, install

# needs_transactions: it commits HL7 messages (on its own replica set), so the standalone
# pass of .ci/run leaves it out rather than run its 30 s twice.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.mongo,
    pytest.mark.needs_transactions,
]


class OwnMongo:
    """A one-node replica set of our own (not the suite's PID file: that one is shared)."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        install()
        command = [
            str(_venv_bin("secantusd-py")),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", ":memory:",
            "--log-level", "WARNING",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out)
        probe = (
            "import sys, pymongo\n"
            "c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=500)\n"
            "sys.exit(0 if c.admin.command('hello').get('isWritablePrimary') else 1)\n"
        )

        def primary() -> bool:
            assert self.process is not None and self.process.poll() is None
            done = subprocess.run(
                [str(_venv_bin("python")), "-c", probe, self.uri], capture_output=True
            )
            return done.returncode == 0

        wait_for(primary, "the MongoDB server is primary", timeout=60)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[OwnMongo]:
    server = OwnMongo(free_port(), tmp_path / "mongo.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_mongo_outage_gives_503_and_ae_then_new_writes_resume(
    tmp_path: Path, mongo: OwnMongo
) -> None:
    uri = f"{mongo.uri}medicore_outage"
    mllp_port = free_port()
    server = start_hl7_server(tmp_path, mllp_port, "--store", uri)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            # paced: on MongoDB an HL7 transaction loses every write conflict on the shared
            # sequence counter to a stream of creates, and would starve
            load = Load(server.base, mllp_port, http_clients=1, pause=0.2)
            load.wait("writes flow", lambda: len(load.created) >= 3 and load.acks["AA"] >= 1)
            mongo.kill()
            refused, ae = len(load.refused), load.acks["AE"]
            load.wait(
                "writes refused",
                lambda: len(load.refused) >= refused + 2 and load.acks["AE"] >= ae + 1,
            )
            ready = http.get("/health/ready")
            mongo.start()  # a new, empty server on the same address
            created = len(load.created)
            load.wait("service resumes", lambda: len(load.created) >= created + 3, timeout=90)
            acked_after = len(load.acked)
            load.wait("HL7 resumes", lambda: len(load.acked) >= acked_after + 1, timeout=90)
            load.stop()
            after = wait_for(
                lambda: http.get("/health/ready").status_code == 200, "ready again", timeout=30
            )
            assert after
            assert ready.status_code == 503
            assert ready.json()["checks"]["store"]["status"] == "fail"
            for answer in load.refused.values():
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "5"
                assert answer.json()["issue"][0]["code"] == "transient"
            # what the new server holds: exactly what was acknowledged after it came up
            since = list(load.created.values())[created:]
            assert [http.get(loc).status_code for loc in since] == [200] * len(since)
            assert total(http, "Patient?identifier=MRN-OUT0&_summary=count") <= 1
        records = audit_verify(tmp_path, uri)
    finally:
        server.stop()
    report(
        f"MongoDB server killed under load: {len(load.refused)} writes answered 503 +"
        f" Retry-After (after the 5 s server selection timeout), {load.acks['AE']} HL7"
        f" messages AE, /health/ready 503; a new server on the same address: writes and HL7"
        f" resumed without a restart, the new database's audit chain verified"
        f" ({records} records)"
    )
