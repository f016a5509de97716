"""MEDICORE_TIMEZONE through the app: HL7 times, date searches and /metadata agree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SqliteStore
from tests.integration.hl7.conftest import HL7_TYPE
from tests.integration.hl7.messages import oru_r01


@pytest.fixture
async def seoul(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=str(tmp_path / "data"),
        auth_required=False,
        timezone="Asia/Seoul",
    )
    app = create_app(
        settings, store=SqliteStore(tmp_path / "store.db"), hl7=Hl7Settings(mllp_port=0)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_hl7_times_and_searches_use_the_hospital_zone(seoul: httpx.AsyncClient) -> None:
    # a lab system that writes local times with no offset anywhere, at 00:30 on March 5th
    raw = (
        oru_r01("TZ1", "MRN-TZ1")
        .replace(b"+0900", b"")
        .replace(b"20240305093000", b"20240305003000")
    )
    ack = await seoul.post("/hl7/v2", content=raw, headers=HL7_TYPE)
    assert "MSA|AA|TZ1" in ack.text
    found = (await seoul.get("/fhir/Observation", params={"date": "2024-03-05"})).json()
    times = {e["resource"]["effectiveDateTime"] for e in found["entry"]}
    assert times == {"2024-03-05T00:30:00+09:00"}  # 2024-03-04 15:30 in UTC
    before = (await seoul.get("/fhir/Observation", params={"date": "2024-03-04"})).json()
    assert before["total"] == 0


async def test_the_zone_is_stated_in_the_capability_statement(seoul: httpx.AsyncClient) -> None:
    statement = (await seoul.get("/fhir/metadata")).json()
    assert "Time zone: Asia/Seoul (MEDICORE_TIMEZONE)" in statement["rest"][0]["documentation"]
