"""POST /hl7/v2 end to end through the app: ACK codes, FHIR results, replays, dead letters."""

from __future__ import annotations

from typing import Any

from fhir_server.hl7.inbox import KIND
from tests.integration.hl7.conftest import HL7_TYPE, Intake
from tests.integration.hl7.messages import (
    NOT_HL7,
    adt_a04,
    oru_r01,
    unsupported_type,
)


def segments(ack: str) -> dict[str, list[str]]:
    return {line[:3]: line.split("|") for line in ack.split("\r") if line}


async def search(intake: Intake, query: str) -> list[dict[str, Any]]:
    response = await intake.http.get(f"/fhir/{query}")
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


async def test_aa_and_resources_found_over_rest(intake: Intake) -> None:
    response = await intake.post(oru_r01("LAB100", "MRN-100"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
    ack = segments(response.text)
    assert ack["MSA"][1:3] == ["AA", "LAB100"]
    # sender and receiver swapped
    assert ack["MSH"][2:6] == ["MEDICORE", "MEDICORE", "MEDILAB", "SGH"]

    patients = await search(intake, "Patient?identifier=MRN-100")
    assert len(patients) == 1
    observations = await search(intake, f"Observation?subject=Patient/{patients[0]['id']}")
    assert len(observations) == 5
    assert {o["status"] for o in observations} == {"final"}
    provenances = await search(intake, f"Provenance?target=Observation/{observations[0]['id']}")
    assert len(provenances) == 1
    source = provenances[0]["entity"][0]["what"]["identifier"]
    assert source["value"] == "MEDILAB|SGH|LAB100"  # the inbox key of the raw message
    record = await intake.store.get_record(KIND, "MEDILAB|SGH|LAB100")
    assert record is not None
    assert record["status"] == "processed"
    assert record["ack"] == response.text
    assert record["text"].startswith("MSH|")


async def test_replay_returns_the_same_ack_and_changes_nothing(intake: Intake) -> None:
    message = oru_r01("LAB200", "MRN-200")
    first = await intake.post(message)
    before = await intake.http.get("/fhir/Observation/_history")
    second = await intake.post(message)
    after = await intake.http.get("/fhir/Observation/_history")
    assert second.text == first.text  # byte for byte: same ACK control id and time
    assert second.headers["x-hl7-ack-code"] == "AA"
    assert len(after.json()["entry"]) == len(before.json()["entry"]) == 5
    assert len(await search(intake, "Patient?identifier=MRN-200")) == 1


async def test_corrected_result_updates_the_same_observation(intake: Intake) -> None:
    await intake.post(oru_r01("LAB300", "MRN-300", order="FL-300"))
    final = {o["id"]: o for o in await search(intake, "Observation?code=2345-7")}
    corrected = await intake.post(
        oru_r01("LAB301", "MRN-300", order="FL-300", status="C", first_value="98")
    )
    assert segments(corrected.text)["MSA"][1] == "AA"
    after = await search(intake, "Observation?code=2345-7")
    assert [o["id"] for o in after] == list(final)
    glucose = after[0]
    assert glucose["status"] == "corrected"
    assert glucose["meta"]["versionId"] == "2"
    assert glucose["valueQuantity"]["value"] == 98
    assert len(await search(intake, "Observation?code=2160-0")) == 1


async def test_unparseable_message_gets_ar_and_is_dead_lettered(intake: Intake) -> None:
    response = await intake.post(NOT_HL7)
    assert response.status_code == 200
    ack = segments(response.text)
    assert ack["MSA"][1] == "AR"
    assert "ERR" in ack

    listed = (await intake.http.get("/hl7/v2/failed")).json()
    assert listed["total"] == 1
    item = listed["items"][0]
    assert item["id"].startswith("unparsed|")
    assert item["ack_code"] == "AR"
    assert item["error"]["code"] == "100"
    assert "raw" not in item and "text" not in item
    # the bytes are kept for the operators
    detail = (await intake.http.get(f"/hl7/v2/failed/{item['id']}")).json()
    assert detail["ack"] == response.text
    # the same bytes again: the same answer, still one dead letter
    again = await intake.post(NOT_HL7)
    assert again.text == response.text
    assert (await intake.http.get("/hl7/v2/failed")).json()["total"] == 1


async def test_unsupported_type_gets_ar_with_table_0357_code(intake: Intake) -> None:
    response = await intake.post(unsupported_type("BAD1"))
    ack = segments(response.text)
    assert ack["MSA"][1:3] == ["AR", "BAD1"]
    assert ack["ERR"][3].split("^")[0] == "200"
    listed = (await intake.http.get("/hl7/v2/failed")).json()
    assert [i["id"] for i in listed["items"]] == ["MEDIADT|SGH|BAD1"]
    assert listed["items"][0]["message_type"] == "ZZZ^Z99"


async def test_reprocess_after_the_cause_is_fixed(intake: Intake) -> None:
    # Two registrations carry one medical record number: the result cannot be filed (AE).
    for _ in range(2):
        created = await intake.http.post(
            "/fhir/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999", "value": "MRN-400"}],
            },
        )
        assert created.status_code == 201
    duplicate_id = created.json()["id"]
    failed = await intake.post(oru_r01("LAB400", "MRN-400"))
    ack = segments(failed.text)
    assert ack["MSA"][1:3] == ["AE", "LAB400"]
    assert ack["ERR"][3].split("^")[0] == "205"
    assert await search(intake, "Observation?code=2345-7") == []
    listed = (await intake.http.get("/hl7/v2/failed")).json()
    assert [i["id"] for i in listed["items"]] == ["MEDILAB|SGH|LAB400"]

    # The interface team merges the duplicate away, then reprocesses: no resend needed.
    assert (await intake.http.delete(f"/fhir/Patient/{duplicate_id}")).status_code in (200, 204)
    done = await intake.http.post("/hl7/v2/failed/MEDILAB%7CSGH%7CLAB400/reprocess")
    assert done.status_code == 200, done.text
    assert done.json()["ack_code"] == "AA"
    assert len(await search(intake, "Observation?code=2345-7")) == 1
    assert (await intake.http.get("/hl7/v2/failed")).json()["total"] == 0
    record = await intake.store.get_record(KIND, "MEDILAB|SGH|LAB400")
    assert record is not None and record["attempts"] == 2
    # a late resend of the message now gets the AA that was recorded
    resent = await intake.post(oru_r01("LAB400", "MRN-400"))
    assert resent.text == done.json()["ack"]
    # processed messages are not reprocessed
    again = await intake.http.post("/hl7/v2/failed/MEDILAB%7CSGH%7CLAB400/reprocess")
    assert again.status_code == 409
    missing = await intake.http.post("/hl7/v2/failed/NOPE%7CX%7C1/reprocess")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


async def test_content_type_is_checked(intake: Intake) -> None:
    response = await intake.http.post(
        "/hl7/v2", content=adt_a04("A1", "M1"), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 415
    assert response.json()["resourceType"] == "OperationOutcome"
    plain = await intake.http.post(
        "/hl7/v2", content=adt_a04("A1", "M1"), headers={"Content-Type": "text/plain"}
    )
    assert segments(plain.text)["MSA"][1] == "AA"


async def test_batch_gets_one_ack_per_message(intake: Intake) -> None:
    batch = (
        b"FHS|^~\\&|MEDIADT|SGH\rBHS|^~\\&|MEDIADT|SGH\r"
        + adt_a04("B1", "MRN-B1")
        + adt_a04("B2", "MRN-B2")
        + b"BTS|2\rFTS|1\r"
    )
    response = await intake.http.post("/hl7/v2", content=batch, headers=HL7_TYPE)
    lines = response.text.split("\r")
    assert lines[0].startswith("BHS")
    assert [line.split("|")[1:3] for line in lines if line.startswith("MSA")] == [
        ["AA", "B1"],
        ["AA", "B2"],
    ]
    assert len(await search(intake, "Patient?identifier=MRN-B2")) == 1


async def test_the_writes_of_a_message_are_audited_as_the_sending_system(intake: Intake) -> None:
    await intake.post(adt_a04("AUD1", "MRN-AUD1"))
    response = await intake.http.get("/fhir/AuditEvent")
    assert response.status_code == 200, response.text
    events = [e["resource"] for e in response.json().get("entry", [])]
    by_sender = [e for e in events if "hl7v2:MEDIADT|SGH" in str(e.get("agent"))]
    assert by_sender, "no AuditEvent names the sending system"


async def test_a_charset_that_is_no_text_encoding_gets_ar_and_is_kept(intake: Intake) -> None:
    """Python's codec registry also holds base64, hex, rot13, "undefined", IDNA, escape
    codecs...: as MSH-18 they are unsupported character sets (AR, kept for reprocessing)."""
    charsets = ("base64", "hex", "rot13", "undefined", "idna", "unicode_escape")
    for charset in charsets:
        message = (
            f"MSH|^~\\&|LAB|H|MEDICORE|MEDICORE|20240101||ADT^A01|CS-{charset}|P|2.5.1|||||"
            f"|{charset}\rPID|1||123^^^H^MR||Kim^A\r"
        ).encode()
        response = await intake.post(message)
        assert response.status_code == 200
        ack = segments(response.text)
        assert ack["MSA"][1:3] == ["AR", f"CS-{charset}"]
        assert ack["ERR"][2] == "MSH^1^18"
    listed = (await intake.http.get("/hl7/v2/failed")).json()
    assert listed["total"] == len(charsets)
