"""``medicore serve`` indexes AuditEvents in a supervised, niced child process.

Pins, on a real server: exactly one ``audit index --follow --parent <server pid>`` child
at niceness 10; it brings the ``.audit-index`` file up to the chain head with no
AuditEvent search; a SIGKILLed child is replaced and indexing goes on; stopping the
server leaves no indexer behind; ``MEDICORE_AUDIT_INDEXER=inline`` runs no child and a
search still sees every event. Linux only (reads /proc).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.e2e.conftest import RunningServer, start_server

pytestmark = pytest.mark.e2e
T = TypeVar("T")
PATIENT = {"resourceType": "Patient", "id": "idx-1", "name": [{"family": "Indexer"}]}


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 5.0) -> T:
    """``probe()``'s first truthy result, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def indexer_pids(server: RunningServer) -> list[int]:
    """The server's children running ``audit index --follow`` (zombies have no cmdline)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
        except FileNotFoundError:
            continue
        if argv[3:6] == ["audit", "index", "--follow"]:
            found.append(int(child))
    return found


def one_indexer(server: RunningServer) -> int | None:
    pids = indexer_pids(server)
    assert len(pids) <= 1, pids
    return pids[0] if pids else None


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def query(path: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(sql).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row and row[0] is not None else 0


def chain_head(store: Path) -> int:
    return query(store, "SELECT max(position) FROM audit")


def indexed_position(store: Path) -> int:
    return query(store.with_name(store.name + ".audit-index"), "SELECT position FROM indexed")


def make_requests(server: RunningServer, reads: int = 20) -> None:
    """One PUT and ``reads`` reads: one AuditEvent each."""
    with httpx.Client(base_url=server.base, timeout=10) as http:
        assert http.put(f"/fhir/Patient/{PATIENT['id']}", json=PATIENT).status_code in (200, 201)
        for _ in range(reads):
            assert http.get(f"/fhir/Patient/{PATIENT['id']}").status_code == 200


def caught_up(store: Path, at_least: int) -> bool:
    head = chain_head(store)
    return head >= at_least and indexed_position(store) == head


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "e2e.db"  # start_server's default store file


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path, env={"MEDICORE_AUDIT_INDEXER": "process"})
    try:
        yield running
    finally:
        running.stop()


def test_one_niced_indexer_child(server: RunningServer) -> None:
    child = wait_for(lambda: one_indexer(server), "the indexer child starts")
    argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
    assert argv[-3:] == ["--parent", str(server.process.pid), ""]
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, child) == 10, "the child renices to 10")
    assert indexer_pids(server) == [child]


def test_child_indexes_without_a_search(server: RunningServer, store: Path) -> None:
    wait_for(lambda: one_indexer(server), "the indexer child starts")
    make_requests(server)
    # Reads' AuditEvents reach the chain from the journal just after their answers.
    wait_for(lambda: chain_head(store) >= 21, "every request's AuditEvent is chained")
    wait_for(lambda: caught_up(store, 21), "the index reaches the chain head")


def test_killed_child_is_replaced_and_indexing_goes_on(server: RunningServer, store: Path) -> None:
    first = wait_for(lambda: one_indexer(server), "the indexer child starts")
    make_requests(server)
    wait_for(lambda: caught_up(store, 21), "the first child indexes")
    os.kill(first, signal.SIGKILL)
    second = wait_for(
        lambda: (pid := one_indexer(server)) != first and pid, "a new child replaces it"
    )
    assert not exists(first)  # reaped by the server, not left a zombie
    head = chain_head(store)
    make_requests(server)
    wait_for(lambda: caught_up(store, head + 21), "the new child indexes new events")
    assert indexer_pids(server) == [second]


def test_stopping_the_server_stops_the_indexer(tmp_path: Path) -> None:
    running = start_server(tmp_path, env={"MEDICORE_AUDIT_INDEXER": "process"})
    try:
        child = wait_for(lambda: one_indexer(running), "the indexer child starts")
    finally:
        code = running.stop()
    assert code in (0, -signal.SIGTERM)
    wait_for(lambda: not exists(child), "the indexer process is gone")


def test_inline_indexer_runs_no_child_and_search_catches_up(tmp_path: Path) -> None:
    running = start_server(tmp_path, env={"MEDICORE_AUDIT_INDEXER": "inline"})
    try:
        make_requests(running)
        assert indexer_pids(running) == []
        with httpx.Client(base_url=running.base, timeout=10) as http:
            bundle = http.get(
                "/fhir/AuditEvent", params={"entity": f"Patient/{PATIENT['id']}", "_count": 100}
            ).json()
        assert bundle["total"] == 21
        assert len(bundle["entry"]) == 21
        assert indexer_pids(running) == []
    finally:
        running.stop()
