"""Hostile HL7 v2: the converter, the processor (inbox + store) and MLLP framing on a socket.

Properties: every message is answered AA, AE or AR (never an internal error, 207), or the
connection closes cleanly; no exception escapes; no traceback, error record or PHI in the
logs; memory does not grow from one batch to the next.
"""

from __future__ import annotations

import gc
import socket
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from converters import ConversionError, build_ack, convert, read_header
from tests.fuzz.conftest import MLLP_LIMIT, LiveIntake, LogTrap, examples, no_leaks
from tests.fuzz.hl7_strategies import PHI_MARKER, hl7_messages, unique_ids
from tests.integration.hl7.messages import adt_a04, oru_r01
from tests.unit.converters.support import validate_bundle

pytestmark = pytest.mark.fuzz

VT, FS_CR = b"\x0b", b"\x1c\r"
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


def ack_fields(ack: bytes) -> tuple[str | None, str | None]:
    """(MSA-1, ERR-3.1) of an ACK."""
    code = error = None
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        fields = segment.decode("utf-8", "replace").split("|")
        if fields[0] == "MSA" and len(fields) > 1:
            code = fields[1]
        if fields[0] == "ERR" and len(fields) > 3:
            error = fields[3].split("^")[0]
    return code, error


# -- the converter alone ------------------------------------------------------------------


# Found by this fuzzer: OBX-6 "^^UCUM" made valueQuantity.unit "", so the whole Bundle
# was invalid and the message ended AE (fixed once for all mappers: converters/_bundle.py).
EMPTY_UNIT = (
    b"MSH|^~\\&|FUZZ|SGH|MEDICORE|MEDICORE|20240305083000+0900||ORU^R01^ORU_R01|0|P|2.5.1\r"
    b"PID|1||MRN-1^^^SGH&2.16.840.1.113883.3.9999&ISO^MR||ZZPHI123^||19880101|M|||^^\r"
    b"ORC|NW|P-1^ORD|F-1^LAB\rOBR|1|P-1^ORD|F-1^LAB|^Panel^LN|||20240305083000+0900\r"
    b"OBX|1|NM|0^Glucose^LN||105|^^UCUM|||||F\r"
)


@given(raw=hl7_messages())
@examples(400)
@example(raw=EMPTY_UNIT)
def test_converter_answers_every_message(raw: bytes) -> None:
    try:
        read_header(raw)
    except ConversionError as exc:
        assert exc.ack_code in ("AE", "AR")
    try:
        result = convert(raw, message_ref="fuzz")
    except ConversionError as exc:
        event(f"{exc.ack_code} {exc.error_code}")  # --hypothesis-show-statistics
        assert exc.ack_code in ("AE", "AR")
        assert exc.error_code != "207", f"a mapping bug surfaced as an internal error: {exc}"
        assert PHI_MARKER not in str(exc)
        ack = build_ack(exc.header, code=exc.ack_code, error=exc, control_id="1", timestamp=MOMENT)
        assert PHI_MARKER not in ack
    else:
        event("converted")
        validate_bundle(result.bundle)


@given(st.binary(max_size=300))
@examples(150)
@example(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||\\X\\\r")
def test_converter_answers_arbitrary_bytes(raw: bytes) -> None:
    try:
        convert(b"MSH|^~\\&|" + raw)
    except ConversionError as exc:
        assert exc.ack_code in ("AE", "AR")
        assert exc.error_code != "207", f"a mapping bug surfaced as an internal error: {exc}"


# -- through the processor: inbox, conversion, commit -------------------------------------


@given(raw=hl7_messages(control_ids=unique_ids))
@examples(120)
@example(raw=EMPTY_UNIT.replace(b"|0|P|", b"|EMPTY-UNIT|P|"))
def test_processor_acknowledges_every_message(
    live_intake: LiveIntake, log_trap: LogTrap, raw: bytes
) -> None:
    ack = live_intake.run(live_intake.intake.processor.handle(raw, source="fuzz"))
    assert ack.code in ("AA", "AE", "AR")
    event(ack.code)
    if raw.startswith(EMPTY_UNIT[:40]) and b"EMPTY-UNIT" in raw:
        assert ack.code == "AA", ack.text
    code, error = ack_fields(ack.encoded())
    assert code == ack.code
    assert error != "207", ack.text
    assert PHI_MARKER not in ack.text
    no_leaks(log_trap, (PHI_MARKER,))


# -- MLLP framing on a real socket ---------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_acks(sock: socket.socket) -> tuple[list[bytes], bool]:
    """Frames until the server closes; (ACK payloads, closed cleanly i.e. not reset)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return _frames(data), False
    return _frames(data), True


def _frames(data: bytes) -> list[bytes]:
    return [part.split(VT, 1)[-1] for part in data.split(FS_CR) if part.strip()]


# One step of a sender: a complete frame, junk between frames, or a frame sent dribbled.
_steps = st.one_of(
    st.tuples(st.just("frame"), hl7_messages(control_ids=unique_ids)),
    st.tuples(st.just("junk"), st.sampled_from([b"\r\n", b"\n", b"\x00", b" ", b"\r\r"])),
    st.tuples(st.just("dribble"), hl7_messages(control_ids=unique_ids)),
)
# How the session ends: closing between frames, inside a frame, or with an oversized one.
_endings = st.sampled_from(["clean", "truncated", "oversized", "no-start-block"])


@given(steps=st.lists(_steps, min_size=1, max_size=4), ending=_endings)
@examples(40)
@example(steps=[("frame", adt_a04("EX-1", "MRN-EX1"))], ending="truncated")
@example(steps=[("dribble", oru_r01("EX-2", "MRN-EX2"))], ending="oversized")
def test_mllp_answers_every_frame_or_closes_cleanly(
    live_intake: LiveIntake, log_trap: LogTrap, steps: list[tuple[str, bytes]], ending: str
) -> None:
    sock = _connect(live_intake.port)
    frames = 0
    with sock:
        for kind, payload in steps:
            if kind == "junk":
                sock.sendall(payload)
                continue
            framed = VT + payload + FS_CR
            if kind == "dribble":  # a slow sender: a few bytes at a time
                for at in range(0, len(framed), max(1, len(framed) // 8)):
                    sock.sendall(framed[at : at + max(1, len(framed) // 8)])
                    time.sleep(0.002)
            else:
                sock.sendall(framed)
            frames += 1
        expected = frames
        if ending == "truncated":
            sock.sendall(VT + b"MSH|^~\\&|CUT|SHORT|")
        elif ending == "oversized":
            sock.sendall(VT + b"MSH|^~\\&|BIG\rNTE|1||" + b"x" * (MLLP_LIMIT + 10) + FS_CR)
            expected += 1  # an AR for the frame that is too large, then the close
        elif ending == "no-start-block":
            sock.sendall(b"MSH|^~\\&|NOVT\r" + FS_CR)
            expected += 1
        sock.shutdown(socket.SHUT_WR)
        acks, clean = _read_acks(sock)
    assert clean, "the server reset the connection"
    assert len(acks) == expected, (len(acks), expected, ending)
    for ack in acks:
        code, error = ack_fields(ack)
        assert code in ("AA", "AE", "AR"), ack
        assert error != "207", ack
        assert PHI_MARKER.encode() not in ack
    no_leaks(log_trap, (PHI_MARKER,))
    # The listener survived: a fresh connection is answered.
    with _connect(live_intake.port) as again:
        again.sendall(VT + adt_a04("ALIVE", "MRN-ALIVE") + FS_CR)
        assert ack_fields(again.recv(65536).strip(VT + FS_CR))[0] == "AA"


def test_mllp_idle_sender_is_disconnected(live_intake: LiveIntake) -> None:
    """A sender that opens a frame and then stalls is closed after the idle timeout."""
    with _connect(live_intake.port) as sock:
        sock.sendall(VT + b"MSH|^~\\&|SLOW|")
        sock.settimeout(live_intake.listener.idle_timeout + 5)
        acks, clean = _read_acks(sock)
    assert acks == [] and clean


# -- memory ---------------------------------------------------------------------------------


def _batch(tag: str, size: int) -> list[bytes]:
    return [oru_r01(f"{tag}-{n}", f"MRN-{tag}-{n % 5}", order=f"{tag}-{n}") for n in range(size)]


def test_no_memory_growth_across_batches(live_intake: LiveIntake) -> None:
    """Traced Python memory after the third batch of MLLP messages is within 10% + 2 MiB of
    that after the first (the store's own pages are C memory and not traced)."""

    def send(batch: list[bytes]) -> None:
        with _connect(live_intake.port) as sock:
            for raw in batch:
                sock.sendall(VT + raw + FS_CR)
                reply = b""
                while not reply.endswith(FS_CR):
                    reply += sock.recv(65536)
                assert ack_fields(reply)[0] == "AA"
        gc.collect()

    send(_batch("warm", 20))
    tracemalloc.start()
    try:
        send(_batch("one", 25))
        after_first = tracemalloc.get_traced_memory()[0]
        send(_batch("two", 25))
        send(_batch("three", 25))
        after_third = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_third <= after_first * 1.10 + 2 * 1024 * 1024, (after_first, after_third)
