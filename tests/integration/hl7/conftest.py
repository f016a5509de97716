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
from fhir_server.storage.sqlite import SqliteStore

HL7_TYPE = {"Content-Type": "x-application/hl7-v2+er7"}


@dataclass
class Intake:
    app: FastAPI
    http: httpx.AsyncClient
    store: SqliteStore

    @property
    def processor(self) -> Hl7Processor:
        processor: Hl7Processor = self.app.state.hl7
        return processor

    async def post(self, raw: bytes) -> httpx.Response:
        return await self.http.post("/hl7/v2", content=raw, headers=HL7_TYPE)


def build_app(store: SqliteStore, tmp_path: Path, hl7: Hl7Settings) -> FastAPI:
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=str(tmp_path / "data"),
        auth_required=False,  # the role guard on these routes is the security layer's test
    )
    return create_app(settings, store=store, hl7=hl7)


@asynccontextmanager
async def open_intake(tmp_path: Path, hl7: Hl7Settings) -> AsyncIterator[Intake]:
    store = SqliteStore(tmp_path / "store.db")
    app = build_app(store, tmp_path, hl7)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Intake(app, http, store)


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    async with open_intake(tmp_path, Hl7Settings(mllp_port=0)) as it:
        yield it
