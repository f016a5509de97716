"""Mangled input never escapes as anything but a ConversionError (so it always gets an ACK)."""

from __future__ import annotations

import random

import pytest

from converters import ConversionError, convert, read_header, split_batch

from .support import raw, validate_bundle

SOURCES = ["own/oru_r01.hl7", "own/rde_o11.hl7", "own/adt_a01.hl7", "own/adt_a40.hl7"]
NOISE = [b"|", b"^", b"~", b"\\", b"&", b"\r", b'""', b"\xff", b"\\X\\", b"MSH", b"", b"9"]


def _mutations(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(raw(rng.choice(SOURCES)))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at : at + rng.randint(0, 3)] = rng.choice(NOISE)
        out.append(bytes(data))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_mutated_messages(seed: int) -> None:
    outcomes = {"ok": 0, "error": 0}
    for data in _mutations(seed, 60):
        try:
            result = convert(data)
        except ConversionError as error:
            assert error.ack_code in ("AE", "AR")
            assert error.error_code != "207", "a mapping bug surfaced as an internal error"
            outcomes["error"] += 1
        else:
            validate_bundle(result.bundle)
            outcomes["ok"] += 1
    assert sum(outcomes.values()) == 60
    assert outcomes["ok"] and outcomes["error"]  # the mutations exercise both paths


@pytest.mark.parametrize(
    "data", [b"", b"\r\n", b"MSH", b"MSH|", b"MSH|^~\\&", b"\xef\xbb\xbf", b"MSH|^~\\&|A\r" * 3]
)
def test_tiny_inputs(data: bytes) -> None:
    with pytest.raises(ConversionError):
        read_header(data) if data.count(b"MSH") < 2 else convert(data)


def test_split_batch_of_nothing() -> None:
    assert split_batch(b"") == []
    assert split_batch(b"FHS|^~\\&\rFTS|0\r") == []
