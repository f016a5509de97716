"""MLLP framing on bytes, then the listener on a real loopback socket in this process."""

from __future__ import annotations

import asyncio

import pytest

from fhir_server.hl7.client import MllpClient, ack_code
from fhir_server.hl7.mllp import FramingError, MllpListener, read_frame
from tests.integration.hl7.conftest import Intake
from tests.integration.hl7.messages import NOT_HL7, adt_a04, oru_r01


def _reader(data: bytes, *, limit: int = 2**16) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_frames_are_cut_and_junk_between_them_skipped() -> None:
    reader = _reader(b"\x0bMSH|one\r\x1c\r\r\n\x0bMSH|two\r\x1c\r")
    assert await read_frame(reader) == b"MSH|one\r"
    assert await read_frame(reader) == b"MSH|two\r"
    assert await read_frame(reader) is None  # clean end between frames


async def test_a_frame_without_start_block_is_kept_whole() -> None:
    assert await read_frame(_reader(b"MSH|x\r\x1c\r")) == b"MSH|x\r"


async def test_an_abandoned_frame_is_not_merged_into_the_next() -> None:
    # <VT> cut short, then a fresh <VT>: only the complete message is a frame.
    reader = _reader(b"\x0bMSH|cut sh\x0bMSH|whole\r\x1c\r")
    assert await read_frame(reader) == b"MSH|whole\r"
    assert await read_frame(reader) is None


async def test_end_of_stream_inside_a_frame_is_an_error() -> None:
    with pytest.raises(FramingError) as caught:
        await read_frame(_reader(b"\x0bMSH|cut short"))
    assert not caught.value.too_large


async def test_a_frame_over_the_limit_is_an_error() -> None:
    with pytest.raises(FramingError) as caught:
        await read_frame(_reader(b"\x0b" + b"x" * 200 + b"\x1c\r", limit=64))
    assert caught.value.too_large


def test_ack_code_reads_msa_1() -> None:
    assert ack_code(b"MSH|^~\\&|A\rMSA|AE|X1|text\r") == "AE"
    assert ack_code(b"MSH|^~\\&|A\r") is None


async def _listener(intake: Intake, *, limit: int = 1 << 20) -> MllpListener:
    listener = MllpListener(
        intake.processor, host="127.0.0.1", port=0, max_message_bytes=limit, idle_timeout=30
    )
    await listener.start()
    return listener


async def test_concurrent_connections_all_committed(intake: Intake) -> None:
    listener = await _listener(intake)
    try:

        async def sender(n: int) -> list[str | None]:
            async with MllpClient("127.0.0.1", listener.port) as client:
                return [
                    ack_code(
                        await client.send(oru_r01(f"C{n}-{i}", f"MRN-C{n}", order=f"O{n}-{i}"))
                    )
                    for i in range(5)
                ]

        codes = await asyncio.gather(*(sender(n) for n in range(4)))
        assert codes == [["AA"] * 5] * 4
        count = (await intake.http.get("/fhir/Observation?_summary=count")).json()["total"]
        assert count == 4 * 5 * 5
        patients = (await intake.http.get("/fhir/Patient?_summary=count")).json()["total"]
        assert patients == 4
    finally:
        await listener.stop()


async def test_resend_on_the_socket_gets_the_same_ack(intake: Intake) -> None:
    listener = await _listener(intake)
    try:
        async with MllpClient("127.0.0.1", listener.port) as client:
            first = await client.send(adt_a04("S1", "MRN-S1"))
            second = await client.send(adt_a04("S1", "MRN-S1"))
            bad = await client.send(NOT_HL7)
        assert first == second
        assert ack_code(bad) == "AR"
    finally:
        await listener.stop()


async def test_a_reused_control_id_on_the_socket_gets_ae_not_the_first_aa(
    intake: Intake,
) -> None:
    listener = await _listener(intake)
    try:
        async with MllpClient("127.0.0.1", listener.port) as client:
            first = await client.send(adt_a04("R1", "MRN-R1"))
            reused = await client.send(adt_a04("R1", "MRN-R2", family="Lee"))  # sender restarted
            again = await client.send(adt_a04("R1", "MRN-R1"))
        assert (ack_code(first), ack_code(reused)) == ("AA", "AE")
        assert again == first
        patients = (await intake.http.get("/fhir/Patient?_summary=count")).json()["total"]
        assert patients == 1
    finally:
        await listener.stop()


async def test_oversized_frame_is_rejected_and_the_connection_closed(intake: Intake) -> None:
    listener = await _listener(intake, limit=256)
    try:
        async with MllpClient("127.0.0.1", listener.port) as client:
            ack = await client.send(adt_a04("BIG", "MRN-BIG") + b"NTE|1||" + b"x" * 400 + b"\r")
            assert ack_code(ack) == "AR"
            with pytest.raises((FramingError, ConnectionError)):
                await client.send(adt_a04("AFTER", "MRN-A"))
    finally:
        await listener.stop()


async def test_stop_closes_idle_connections_promptly(intake: Intake) -> None:
    listener = await _listener(intake)
    async with MllpClient("127.0.0.1", listener.port) as client:
        assert ack_code(await client.send(adt_a04("I1", "MRN-I1"))) == "AA"
        await asyncio.wait_for(listener.stop(), timeout=5)
        with pytest.raises((FramingError, ConnectionError)):
            await client.send(adt_a04("I2", "MRN-I2"))
