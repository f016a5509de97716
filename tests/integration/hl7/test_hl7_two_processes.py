"""The same HL7 message given to two server processes at once is applied once.

Two apps on two store objects over one store stand for two workers (or two servers):
nothing in process memory is shared, so only the store can make one of them win.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.hl7 import Hl7Settings
from fhir_server.storage.base import Store
from tests.conftest import AUDIT_KEY, make_store, mongo_uri
from tests.integration.hl7.conftest import build_app
from tests.integration.hl7.messages import oru_r01

pytestmark = pytest.mark.needs_transactions  # an HL7 message commits as a transaction

ROUNDS = 8
OBSERVATIONS_PER_MESSAGE = 5


async def _twin(kind: str, tmp_path: Path, database: str | None) -> Store:
    if kind == "sqlite":
        from fhir_server.storage.sqlite import SqliteStore

        return SqliteStore(tmp_path / "store.db", audit_key=AUDIT_KEY)
    from fhir_server.storage.mongo import MongoStore

    return MongoStore.from_uri(mongo_uri(), database=database, audit_key=AUDIT_KEY)


@pytest.fixture(params=["sqlite", "mongo"])
async def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[list[FastAPI]]:
    first, database = await make_store(request.param, tmp_path)
    second = await _twin(request.param, tmp_path, database)
    apps = [
        build_app(store, tmp_path / name, Hl7Settings(mllp_port=0))
        for store, name in ((first, "a"), (second, "b"))
    ]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield apps
        if database is not None:
            await first.client.drop_database(database)  # type: ignore[attr-defined]


async def test_a_message_sent_to_two_processes_at_once_is_applied_once(
    two_servers: list[FastAPI],
) -> None:
    for n in range(ROUNDS):
        raw = oru_r01(f"TWIN{n}", f"MRN-TWIN{n}", order=f"TW-{n}")
        handlers = [app.state.hl7 for app in two_servers] * 2  # two connections to each
        acks = await asyncio.gather(*(h.handle(raw, source="mllp") for h in handlers))
        assert [ack.code for ack in acks] == ["AA"] * len(acks)
        assert len({ack.text for ack in acks}) == 1  # the loser answers with the winner's ACK
    transport = httpx.ASGITransport(app=two_servers[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        bundle = (await http.get("/fhir/Observation?_summary=count")).json()
    assert bundle["total"] == ROUNDS * OBSERVATIONS_PER_MESSAGE
