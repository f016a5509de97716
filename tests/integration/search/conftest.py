"""Fixtures: every search test runs on SQLite and on MongoDB (a real server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fhir_server.search.registry import SearchRegistry
from tests.integration.search.stores import Backend, examples


@pytest.fixture(params=["sqlite", "mongo"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    store = Backend(request.param, SearchRegistry.default())
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def loaded(backend: Backend) -> Backend:
    for resource in examples():
        await backend.put(resource)
    return backend
