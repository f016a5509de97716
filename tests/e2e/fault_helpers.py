"""Shared pieces of the fault tests (``tests/e2e/test_faults_*.py``, ``-m faults``).

Each test records the figures it measured with :func:`report`; the e2e conftest prints
them at the end of the session (the README's Reliability section quotes them).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

from tests.e2e.hl7_conftest import medicore

T = TypeVar("T")
FIGURES: list[str] = []


def report(line: str) -> None:
    FIGURES.append(line)


@contextmanager
def store_uri(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store of ``kind`` for one test: an SQLite file, or a database of its own on
    the suite's real MongoDB wire-protocol server (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'e2e.db'}"
        return
    import pymongo

    from tests.conftest import mongo_uri

    name = f"medicore_faults_{uuid.uuid4().hex[:10]}"
    base = mongo_uri().rstrip("/")
    try:
        yield f"{base}/{name}"
    finally:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            base, serverSelectionTimeoutMS=5000
        )
        try:
            client.drop_database(name)
        finally:
            client.close()


def total(http: httpx.Client, query: str) -> int:
    response = http.get(f"/fhir/{query}")
    assert response.status_code == 200, response.text
    found: int = response.json()["total"]
    return found


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """``probe()``'s first truthy result, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def audit_verify(tmp_path: Path, uri: str) -> int:
    """``medicore audit verify`` on the store must pass; the number of records it walked."""
    done = medicore(tmp_path, "audit", "verify", "--store", uri)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"audit chain OK: (\d+) records", done.stdout)
    assert found, done.stdout
    return int(found.group(1))


def audit_index_caught_up(http: httpx.Client, tmp_path: Path, uri: str) -> int:
    """AuditEvent search finds every record of the chain (the index caught up after the
    crash): the count search sees all records but its own, which verify then counts."""
    searchable = total(http, "AuditEvent?_summary=count")
    recorded = audit_verify(tmp_path, uri)
    assert searchable == recorded - 1, (searchable, recorded)
    return recorded
