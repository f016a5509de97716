"""The app with the HL7 intake on a real SQLite file, driven through ASGI (no MLLP port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Processor, Hl7Settings
from fhir_server.settings import Settings
from fhir_server.storage.base import Store
from fhir_server.storage.sqlite import SqliteStore
from tests.conftest import drop_database, make_store

HL7_TYPE = {"Content-Type": "x-application/hl7-v2+er7"}


@dataclass
class Intake:
    app: FastAPI
    http: httpx.AsyncClient
    store: Store

    @property
    def processor(self) -> Hl7Processor:
        processor: Hl7Processor = self.app.state.hl7
        return processor

    async def post(self, raw: bytes) -> httpx.Response:
        return await self.http.post("/hl7/v2", content=raw, headers=HL7_TYPE)


def build_app(store: Store, tmp_path: Path, hl7: Hl7Settings) -> FastAPI:
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=str(tmp_path / "data"),
        auth_required=False,  # the role guard on these routes is the security layer's test
    )
    return create_app(settings, store=store, hl7=hl7)


@asynccontextmanager
async def open_intake(
    tmp_path: Path, hl7: Hl7Settings, *, store: Store | None = None
) -> AsyncIterator[Intake]:
    """The intake on ``store``; by default an SQLite file in ``tmp_path``."""
    store = store or SqliteStore(tmp_path / "store.db")
    app = build_app(store, tmp_path, hl7)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Intake(app, http, store)


# An HL7 message commits as one transaction: a standalone MongoDB refuses it (AE).
@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.needs_transactions)])
async def intake(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Intake]:
    if request.param == "sqlite":
        async with open_intake(tmp_path, Hl7Settings(mllp_port=0)) as it:
            yield it
        return
    store, database = await make_store("mongo", tmp_path)
    async with open_intake(tmp_path, Hl7Settings(mllp_port=0), store=store) as it:
        yield it
        await drop_database(store, database)  # before the app closes the client
