"""Start-up recovery and charsets: messages stored but not finished, senders without MSH-18."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fhir_server.hl7 import Hl7Settings, inbox
from fhir_server.hl7.inbox import KIND
from fhir_server.storage.sqlite import SqliteStore
from tests.integration.hl7.conftest import Intake, open_intake
from tests.integration.hl7.messages import euc_kr_a04, oru_r01


async def _observation_count(intake: Intake) -> int:
    bundle = (await intake.http.get("/fhir/Observation?_summary=count")).json()
    total: int = bundle["total"]
    return total


async def test_messages_left_received_are_processed_at_start_up(tmp_path: Path) -> None:
    # A process was killed after storing the raw message and before committing it.
    raw = oru_r01("LAB500", "MRN-500")
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    doc = inbox.received_doc(raw, header=None, text=None, source="mllp", at=inbox.now())
    assert await inbox.insert(store, "MEDILAB|SGH|LAB500", doc) is None
    await store.close()

    async with open_intake(tmp_path, Hl7Settings(mllp_port=0)) as intake:
        await asyncio.wait_for(intake.app.state.hl7_recovery, timeout=10)
        record = await intake.store.get_record(KIND, "MEDILAB|SGH|LAB500")
        assert record is not None
        assert record["status"] == "processed"
        assert record["sender"] == "MEDILAB|SGH"
        assert record["ack"].split("\r")[1] == "MSA|AA|LAB500"
        assert await _observation_count(intake) == 5


async def test_running_a_message_again_is_idempotent(intake: Intake) -> None:
    raw = oru_r01("LAB600", "MRN-600")
    assert "MSA|AA|LAB600" in (await intake.post(raw)).text
    # As if the process died after commit and the record were still "received".
    record = await intake.store.get_record(KIND, "MEDILAB|SGH|LAB600")
    assert record is not None
    await inbox.replace(intake.store, "MEDILAB|SGH|LAB600", {**record, "status": "received"})
    assert await intake.processor.recover() == 1
    assert await _observation_count(intake) == 5
    patients = (await intake.http.get("/fhir/Patient?identifier=MRN-600")).json()
    assert len(patients["entry"]) == 1


async def test_a_resend_after_a_retry_later_ae_is_applied(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store conflict answers AE 206 ("retry later"): the resend must not get that AE back.
    from fhir_server.hl7 import processor as module
    from fhir_server.resources import errors

    real = module.BundleProcessor.process

    async def busy(*args: object, **kwargs: object) -> None:
        raise errors.conflict("version conflict")

    monkeypatch.setattr(module.BundleProcessor, "process", busy)
    raw = oru_r01("LAB650", "MRN-650")
    first = (await intake.post(raw)).text.split("\r")
    assert first[1].startswith("MSA|AE|LAB650|") and "|206^" in first[2]
    monkeypatch.setattr(module.BundleProcessor, "process", real)
    second = await intake.post(raw)
    assert second.text.split("\r")[1] == "MSA|AA|LAB650"
    assert await _observation_count(intake) == 5
    third = await intake.post(raw)  # now an ordinary replay: the AA again, byte for byte
    assert third.text == second.text


async def test_sender_charset_fixed_then_reprocessed(intake: Intake) -> None:
    raw = euc_kr_a04("KR1", "MRN-KR1")
    first = await intake.post(raw)
    assert first.text.split("\r")[1].startswith("MSA|AR|KR1")
    listed = (await intake.http.get("/hl7/v2/failed")).json()
    assert listed["items"][0]["error"]["location"] == "MSH^1^18"

    # The interface team configures the sender's charset, then reprocesses.
    intake.processor.settings = Hl7Settings(hl7_sender_charsets={"KRADT|SGH": "KS X 1001"})
    done = await intake.http.post("/hl7/v2/failed/KRADT%7CSGH%7CKR1/reprocess")
    assert done.json()["ack_code"] == "AA"
    patient = (await intake.http.get("/fhir/Patient?identifier=MRN-KR1")).json()["entry"][0]
    assert patient["resource"]["name"][0]["family"] == "홍"
    record = await intake.store.get_record(KIND, "KRADT|SGH|KR1")
    assert record is not None and "홍^길동" in record["text"]


async def test_default_charset_applies_when_msh18_is_empty(tmp_path: Path) -> None:
    settings = Hl7Settings(mllp_port=0, hl7_default_charset="KS X 1001")
    async with open_intake(tmp_path, settings) as intake:
        response = await intake.post(euc_kr_a04("KR2", "MRN-KR2"))
        assert "MSA|AA|KR2" in response.text
        ack = await intake.processor.handle(euc_kr_a04("KR2", "MRN-KR2"), source="test")
        assert ack.duplicate and ack.codec == "euc-kr"


def test_sender_charset_lookup() -> None:
    settings = Hl7Settings(
        hl7_default_charset="8859/1",
        hl7_sender_charsets={"LAB|NORTH": "KS X 1001", "ADT": "UNICODE UTF-8"},
    )
    assert settings.charset_for("LAB|NORTH") == "KS X 1001"
    assert settings.charset_for("LAB|SOUTH") == "8859/1"
    assert settings.charset_for("ADT|ANY") == "UNICODE UTF-8"
    assert settings.charset_for(None) == "8859/1"


def test_sender_charsets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICORE_HL7_SENDER_CHARSETS", '{"LAB|NORTH": "KS X 1001"}')
    monkeypatch.setenv("MEDICORE_MLLP_PORT", "0")
    settings = Hl7Settings()
    assert settings.charset_for("LAB|NORTH") == "KS X 1001"
    assert settings.mllp_port == 0
