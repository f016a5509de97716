"""A control id reused with other content is kept and answered AE, on both stores.

Senders restart their counters: the second message under a taken MSH-10 must not get the
first one's AA (it would be dropped silently). Identical resends keep the original ACK.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.hl7.inbox import KIND, REUSED_CONTROL_ID, content_digest, reused_key
from fhir_server.settings import Settings
from fhir_server.storage.base import Store
from tests.conftest import make_store
from tests.integration.hl7.conftest import HL7_TYPE
from tests.integration.hl7.messages import oru_r01

KEY = "MEDILAB|SGH|LAB900"


def msa(ack: str) -> list[str]:
    return next(line.split("|") for line in ack.split("\r") if line.startswith("MSA"))


def err(ack: str) -> list[str]:
    return next(line.split("|") for line in ack.split("\r") if line.startswith("ERR"))


class Intake:
    def __init__(self, http: httpx.AsyncClient, store: Store) -> None:
        self.http, self.store = http, store

    async def post(self, raw: bytes) -> httpx.Response:
        response = await self.http.post("/hl7/v2", content=raw, headers=HL7_TYPE)
        assert response.status_code == 200, response.text
        return response

    async def reused_count(self) -> float:
        text = (await self.http.get("/metrics")).text
        found = re.search(r"^medicore_hl7_control_id_reused_total (\S+)$", text, re.M)
        assert found, "the counter is exported"
        return float(found[1])


@pytest.fixture(params=["sqlite", "mongo"])
async def intake(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Intake]:
    store, drop = await make_store(request.param, tmp_path)
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=str(tmp_path / "data"),
        auth_required=False,
    )
    app = create_app(settings, store=store, hl7=Hl7Settings(mllp_port=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Intake(http, app.state.store)
        if drop is not None:
            await store.client.drop_database(drop)  # type: ignore[attr-defined]


async def glucose_values(intake: Intake) -> list[float]:
    r = await intake.http.get("/fhir/Observation", params={"code": "2345-7"})
    return [e["resource"]["valueQuantity"]["value"] for e in r.json().get("entry", [])]


@pytest.mark.needs_transactions
async def test_other_content_under_a_taken_control_id_is_kept_and_answered_ae(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    first_message = oru_r01("LAB900", "MRN-900", order="FL-900")
    first = await intake.post(first_message)
    assert msa(first.text)[1:3] == ["AA", "LAB900"]
    before = await intake.reused_count()

    other = oru_r01("LAB900", "MRN-901", order="FL-901", first_value="250")  # after a restart
    with caplog.at_level(logging.WARNING, logger="medicore.hl7"):
        reused = await intake.post(other)
    assert reused.text != first.text
    assert msa(reused.text)[1:3] == ["AE", "LAB900"]
    assert err(reused.text)[3].split("^")[0] == "205"  # table 0357: duplicate key identifier
    assert REUSED_CONTROL_ID in reused.text
    assert await glucose_values(intake) == [105]  # nothing of the second message applied

    dead_key = reused_key(KEY, content_digest(other))
    dead = await intake.store.get_record(KIND, dead_key)
    assert dead is not None
    assert (dead["status"], dead["ack_code"], dead["error"]["text"]) == (
        "failed",
        "AE",
        REUSED_CONTROL_ID,
    )
    assert dead["ack"] == reused.text
    original = await intake.store.get_record(KIND, KEY)
    assert original is not None and original["ack"] == first.text  # untouched
    listed = (await intake.http.get("/hl7/v2/failed")).json()
    assert [item["id"] for item in listed["items"]] == [dead_key]

    lines = [r.getMessage() for r in caplog.records if REUSED_CONTROL_ID in r.getMessage()]
    assert len(lines) == 1
    assert "MRN-90" not in lines[0] and "Kim" not in lines[0]  # names the key, no PHI
    assert await intake.reused_count() == before + 1


@pytest.mark.needs_transactions
async def test_resends_of_either_message_get_their_own_first_answer(intake: Intake) -> None:
    first_message = oru_r01("LAB900", "MRN-900", order="FL-900")
    other = oru_r01("LAB900", "MRN-901", order="FL-901", first_value="250")
    first = await intake.post(first_message)
    reused = await intake.post(other)
    counted = await intake.reused_count()

    restamped = first_message.replace(b"20240305101500+0900", b"20240305103000+0900", 1)
    for resend in (first_message, restamped, first_message.replace(b"\r", b"\r\n")):
        assert (await intake.post(resend)).text == first.text  # the original AA, unchanged
    assert (await intake.post(other)).text == reused.text  # its own AE, one dead letter
    assert (await intake.http.get("/hl7/v2/failed")).json()["total"] == 1
    assert await intake.reused_count() == counted  # resends are not new reuses
    assert await glucose_values(intake) == [105]


@pytest.mark.needs_transactions
async def test_the_operator_can_apply_the_kept_message(intake: Intake) -> None:
    await intake.post(oru_r01("LAB900", "MRN-900", order="FL-900"))
    other = oru_r01("LAB900", "MRN-901", order="FL-901", first_value="250")
    await intake.post(other)
    dead_key = reused_key(KEY, content_digest(other))
    r = await intake.http.post(f"/hl7/v2/failed/{dead_key.replace('|', '%7C')}/reprocess")
    assert r.status_code == 200, r.text
    assert sorted(await glucose_values(intake)) == [105, 250]
    dead = await intake.store.get_record(KIND, dead_key)
    assert dead is not None and dead["status"] == "processed"


@pytest.mark.needs_transactions
async def test_two_messages_under_one_control_id_at_once_get_one_aa(intake: Intake) -> None:
    first_message = oru_r01("LAB900", "MRN-900", order="FL-900")
    other = oru_r01("LAB900", "MRN-901", order="FL-901", first_value="250")
    answers = await asyncio.gather(*(intake.post(m) for m in (first_message, other, other)))
    codes = sorted(msa(a.text)[1] for a in answers)
    assert codes in (["AA", "AE", "AE"], ["AA", "AA", "AE"])  # the winner's copy shares its AA
    assert len(await glucose_values(intake)) == 1
    assert (await intake.http.get("/hl7/v2/failed")).json()["total"] == 1
