"""Several processes, one store: ``medicore serve --workers 2`` on SQLite, and two separate
instances on the real MongoDB server. Every guarantee that needs one global order holds:
parallel identical conditional creates make one resource, parallel ``If-Match`` updates
of one version give one 200, parallel plain updates all succeed with gapless versions,
one HL7 message on several connections is applied once, and the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from fhir_server.hl7.client import MllpClient, ack_code
from fhir_server.storage.sqlite import sqlite_path_from_uri
from fhir_server.storage.sqlite_journal import journal_path
from tests.conftest import mongo_uri
from tests.e2e.conftest import RunningServer, free_port, start_server
from tests.integration.hl7.messages import oru_r01

pytestmark = pytest.mark.e2e

CREATES = 50
PINNED_UPDATES = 20
PLAIN_UPDATES = 20
HL7_CONNECTIONS = 4
FHIR = "application/fhir+json"


@dataclass
class Cluster:
    """Servers on one store; request ``n`` goes to server ``n % len(servers)``."""

    servers: list[RunningServer]
    mllp_ports: list[int]
    store: str

    def url(self, n: int, path: str) -> str:
        return f"{self.servers[n % len(self.servers)].base}/fhir/{path}"


def _start(tmp_path: Path, store: str, *extra: str) -> tuple[RunningServer, int]:
    mllp = free_port()
    return start_server(tmp_path, "--store", store, "--mllp-port", str(mllp), *extra), mllp


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Cluster]:
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    server, mllp = _start(tmp_path, store, "--workers", "2")
    try:
        yield Cluster([server], [mllp], store)
    finally:
        server.stop()


def _fresh_mongo_database() -> str:
    # The database named in the URI's path is the one used, as by every MongoDB tool.
    parts = urlsplit(mongo_uri())
    return urlunsplit(parts._replace(path=f"/medicore_e2e_{uuid.uuid4().hex[:10]}"))


@pytest.fixture(params=["two workers", "two instances"])
def on_mongodb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    store = _fresh_mongo_database()
    if request.param == "two workers":
        started = [_start(tmp_path, store, "--workers", "2")]
    else:  # started one by one: the first makes the audit key, the second reads it
        started = [_start(tmp_path, store) for _ in range(2)]
    try:
        yield Cluster([s for s, _ in started], [p for _, p in started], store)
    finally:
        for server, _ in started:
            server.stop()


async def _conditional_creates(http: httpx.AsyncClient, cluster: Cluster) -> None:
    mrn = uuid.uuid4().hex
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:race", "value": mrn}]}
    headers = {"If-None-Exist": f"identifier=urn:race|{mrn}", "Content-Type": FHIR}
    answers = await asyncio.gather(
        *(http.post(cluster.url(n, "Patient"), json=body, headers=headers) for n in range(CREATES))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * (CREATES - 1) + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    found = (await http.get(cluster.url(0, f"Patient?identifier=urn:race|{mrn}"))).json()
    assert found["total"] == 1


async def _pinned_updates(http: httpx.AsyncClient, cluster: Cluster) -> None:
    created = await http.post(cluster.url(0, "Patient"), json={"resourceType": "Patient"})
    pid = created.json()["id"]
    body = {"resourceType": "Patient", "id": pid, "active": True}
    headers = {"If-Match": 'W/"1"', "Content-Type": FHIR}
    answers = await asyncio.gather(
        *(
            http.put(cluster.url(n, f"Patient/{pid}"), json=body, headers=headers)
            for n in range(PINNED_UPDATES)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [412] * (PINNED_UPDATES - 1)


async def _plain_updates(http: httpx.AsyncClient, cluster: Cluster) -> None:
    created = await http.post(cluster.url(0, "Patient"), json={"resourceType": "Patient"})
    pid = created.json()["id"]
    answers = await asyncio.gather(
        *(
            http.put(
                cluster.url(n, f"Patient/{pid}"),
                json={
                    "resourceType": "Patient",
                    "id": pid,
                    "multipleBirthInteger": n + 1,  # distinct bodies: no no-op update
                },
            )
            for n in range(PLAIN_UPDATES)
        )
    )
    assert [a.status_code for a in answers] == [200] * PLAIN_UPDATES
    versions = sorted(int(a.json()["meta"]["versionId"]) for a in answers)
    assert versions == list(range(2, PLAIN_UPDATES + 2))  # gapless, none lost
    history = (await http.get(cluster.url(1, f"Patient/{pid}/_history?_count=100"))).json()
    assert len(history["entry"]) == PLAIN_UPDATES + 1


async def _hl7_once(http: httpx.AsyncClient, cluster: Cluster) -> None:
    order = f"W-{uuid.uuid4().hex[:8]}"
    raw = oru_r01(f"WK{order}", f"MRN-{order}", order=order)

    async def send(n: int) -> str | None:
        port = cluster.mllp_ports[n % len(cluster.mllp_ports)]
        async with MllpClient("127.0.0.1", port) as client:
            return ack_code(await client.send(raw))

    assert await asyncio.gather(*(send(n) for n in range(HL7_CONNECTIONS))) == ["AA"] * 4
    found = (await http.get(cluster.url(0, "Observation?_summary=count"))).json()
    assert found["total"] == 5  # one message's five results, once


def _audit_verifies(tmp_path: Path, store: str) -> None:
    verified = subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "audit", "verify", "--store", store],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def _races(cluster: Cluster, *, hl7: bool) -> None:
    limits = httpx.Limits(max_connections=CREATES)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await _conditional_creates(http, cluster)
        await _pinned_updates(http, cluster)
        await _plain_updates(http, cluster)
        if hl7:
            await _hl7_once(http, cluster)


def test_two_workers_on_sqlite_keep_every_guarantee(two_workers: Cluster, tmp_path: Path) -> None:
    asyncio.run(_races(two_workers, hl7=True))
    _audit_verifies(tmp_path, two_workers.store)


@pytest.mark.mongo
def test_two_workers_and_two_instances_on_mongodb_keep_every_guarantee(
    on_mongodb: Cluster, tmp_path: Path
) -> None:
    standalone = os.environ.get("MEDICORE_TEST_MONGODB_MODE") == "standalone"
    # Without transactions an HL7 message is refused (AE); the REST races still hold.
    asyncio.run(_races(on_mongodb, hl7=not standalone))
    _audit_verifies(tmp_path, on_mongodb.store)


def _workers_of(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"fhir_server.serving.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _ready(base: str) -> dict[str, str]:
    body = httpx.get(f"{base}/health/ready").json()
    return body["checks"]["server"]


def test_a_killed_worker_is_replaced_while_the_other_serves(two_workers: Cluster) -> None:
    server = two_workers.servers[0]
    supervisor = server.process.pid
    assert _ready(server.base)["message"].startswith("2 of 2 workers serving")
    victim = _workers_of(supervisor)[0]
    os.kill(victim, signal.SIGKILL)
    # A new connection each: a pooled one may have been the victim's, and is reset.
    statuses = [httpx.get(f"{server.base}/fhir/Patient?_count=1").status_code for _ in range(40)]
    assert statuses == [200] * 40  # the survivor answered every request
    deadline = time.monotonic() + 30
    while victim in _workers_of(supervisor) or len(_workers_of(supervisor)) < 2:
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.2)
    while not _ready(server.base)["message"].startswith("2 of 2 workers serving"):
        assert time.monotonic() < deadline, "readiness never saw the replacement"
        time.sleep(0.2)
    metrics = httpx.get(f"{server.base}/metrics").text
    assert "medicore_worker_restarts 1.0" in metrics
    assert "medicore_workers_serving 2.0" in metrics


def test_metrics_count_the_requests_of_every_worker(two_workers: Cluster) -> None:
    server = two_workers.servers[0]
    first, second = _workers_of(server.process.pid)
    journal = journal_path(sqlite_path_from_uri(two_workers.store))
    # A stopped worker accepts nothing: each batch is served by the other one alone.
    for paused in (first, second):
        # Not while it chains the last requests' AuditEvents: it would keep the store's
        # writer lock, stopped, and the other worker would wait for it.
        _wait_until(lambda: _journaled(journal) == 0, "the journal is chained")
        os.kill(paused, signal.SIGSTOP)
        try:
            for _ in range(10):  # a new connection each
                assert httpx.get(f"{server.base}/fhir/Observation?_count=1").status_code == 200
        finally:
            os.kill(paused, signal.SIGCONT)
    metrics = httpx.get(f"{server.base}/metrics").text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("medicore_http_requests_total")
        and 'interaction="search-type",resource_type="Observation",status="200"' in line
    )
    assert float(line.split()[-1]) == 20  # both workers' requests, whichever answered


def test_workers_leave_when_the_supervisor_is_killed(two_workers: Cluster) -> None:
    server = two_workers.servers[0]
    workers = _workers_of(server.process.pid)
    server.stop(signal.SIGKILL)  # no orphan may keep the ports
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and not _is_zombie(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base}/health/live", timeout=2)


def _journaled(journal: Path) -> int:
    total = 0
    for path in journal.glob("*.db"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            total += int(conn.execute("SELECT count(*) FROM pending").fetchone()[0])
    return total


def _wait_until(probe: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True
