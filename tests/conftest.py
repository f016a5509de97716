"""Shared fixtures: both stores behind one parametrized ``store`` fixture."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fhir_server.storage.base import Store

AUDIT_KEY = b"test-audit-chain-key"
_URI_VARIABLE = "MEDICORE_TEST_MONGODB_URI"


def mongo_uri() -> str:
    """The real MongoDB wire-protocol server the MongoDB tests use: the one named by
    MEDICORE_TEST_MONGODB_URI, else the one this test session started (see below)."""
    return os.environ[_URI_VARIABLE]


def pytest_configure(config: pytest.Config) -> None:
    """Without MEDICORE_TEST_MONGODB_URI, start a replica-set SecantusDB for the session
    (``tests/mongo_server.py``): MongoDB tests never run against a mock."""
    # Dates without an offset are read in MEDICORE_TIMEZONE (default: the machine's zone):
    # every test, and every server a test starts, reads them in UTC unless it says otherwise.
    os.environ["MEDICORE_TIMEZONE"] = "UTC"
    if os.environ.get(_URI_VARIABLE):
        return
    from tests.mongo_server import free_port, start

    port = free_port()
    os.environ[_URI_VARIABLE] = start(port, standalone=False)
    config.stash[_STARTED] = port


def pytest_unconfigure(config: pytest.Config) -> None:
    port = config.stash.get(_STARTED, None)
    if port is not None:
        from tests.mongo_server import stop

        stop(port)
        del os.environ[_URI_VARIABLE]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs on MongoDB is marked ``mongo``: ``.ci/run`` runs them again
    against a standalone server (``-m "mongo and not needs_transactions"``)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "mongo" in callspec.params.values():
            item.add_marker(pytest.mark.mongo)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line with the MongoDB tests' counts and the server mode (quoted in README)."""
    counts = {"passed": 0, "failed": 0}
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            if report.when == "call" and "mongo" in report.keywords:
                counts[outcome] += 1
    if sum(counts.values()):
        mode = os.environ.get("MEDICORE_TEST_MONGODB_MODE", "replica set")
        terminalreporter.write_line(
            f"MongoDB tests on a real server ({mode}): {counts['passed']} passed,"
            f" {counts['failed']} failed"
        )


_STARTED = pytest.StashKey[int]()  # the port of the server this session started


async def make_store(kind: str, tmp_path: Path) -> tuple[Store, str | None]:
    """A fresh store of ``kind``; for a real MongoDB also the database name to drop."""
    if kind == "sqlite":
        from fhir_server.storage.sqlite import SqliteStore

        return SqliteStore(tmp_path / "store.db", audit_key=AUDIT_KEY), None
    from fhir_server.storage.mongo import MongoStore

    name = f"medicore_test_{uuid.uuid4().hex[:12]}"
    return MongoStore.from_uri(mongo_uri(), database=name, audit_key=AUDIT_KEY), name


@pytest.fixture(params=["sqlite", "mongo"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    the_store, drop = await make_store(request.param, tmp_path)
    await the_store.open()
    try:
        yield the_store
    finally:
        await drop_database(the_store, drop)
        await the_store.close()


async def drop_database(store: Store, name: str | None) -> None:
    """Drop the MongoDB test database ``make_store`` named (None: nothing to drop)."""
    if name is not None:
        await store.client.drop_database(name)  # type: ignore[attr-defined]
