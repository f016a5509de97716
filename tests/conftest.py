"""Shared fixtures: both stores behind one parametrized ``store`` fixture."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_server.storage.base import Store

MONGO_URI = os.environ.get("MEDICORE_TEST_MONGODB_URI")
AUDIT_KEY = b"test-audit-chain-key"


async def make_store(kind: str, tmp_path: Path) -> tuple[Store, str | None]:
    """A fresh store of ``kind``; for a real MongoDB also the database name to drop."""
    if kind == "sqlite":
        from fhir_server.storage.sqlite import SqliteStore

        return SqliteStore(tmp_path / "store.db", audit_key=AUDIT_KEY), None
    from fhir_server.storage.mongo import MongoStore

    name = f"medicore_test_{uuid.uuid4().hex[:12]}"
    if MONGO_URI:
        return MongoStore.from_uri(MONGO_URI, database=name, audit_key=AUDIT_KEY), name
    from mongomock_motor import AsyncMongoMockClient

    return MongoStore(AsyncMongoMockClient(), database=name, audit_key=AUDIT_KEY), None


@pytest.fixture(params=["sqlite", "mongo"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    the_store, drop = await make_store(request.param, tmp_path)
    await the_store.open()
    try:
        yield the_store
    finally:
        if drop is not None:
            await the_store.client.drop_database(drop)  # type: ignore[attr-defined]
        await the_store.close()
