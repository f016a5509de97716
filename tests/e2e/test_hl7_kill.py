"""SIGKILL mid-stream: every message that got an AA is in the store exactly once."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx

from fhir_server.hl7.client import MllpClient, ack_code
from fhir_server.hl7.mllp import FramingError
from tests.e2e.conftest import free_port
from tests.e2e.hl7_conftest import start_hl7_server
from tests.integration.hl7.messages import oru_r01

CONNECTIONS = 3
TOTAL = 3000  # far more than get through before the kill


def message(n: int) -> bytes:
    return oru_r01(f"K{n}", f"MRN-K{n}", order=f"ORD-K{n}")


class Sender:
    """Streams messages over several connections until the server dies under it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: list[int] = []
        self.unanswered: list[int] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._stream()), daemon=True)

    async def _connection(self, first: int) -> None:
        n = first
        try:
            async with MllpClient("127.0.0.1", self.port, timeout=20) as client:
                while n < TOTAL:
                    ack = await client.send(message(n))
                    assert ack_code(ack) == "AA"
                    self.acked.append(n)
                    n += CONNECTIONS
        except (OSError, FramingError, TimeoutError, asyncio.IncompleteReadError):
            self.unanswered.append(n)  # sent (maybe) but never acknowledged

    async def _stream(self) -> None:
        await asyncio.gather(*(self._connection(c) for c in range(CONNECTIONS)))


def _total(http: httpx.Client, query: str) -> int:
    response = http.get(f"/fhir/{query}")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def test_sigkill_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    mllp_port = free_port()
    first = start_hl7_server(tmp_path, mllp_port)
    sender = Sender(mllp_port)
    sender.thread.start()
    deadline = time.monotonic() + 60
    while len(sender.acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.stop(signal.SIGKILL)  # no shutdown hook runs
    sender.thread.join(timeout=30)
    acked = sorted(sender.acked)
    assert len(acked) >= 40
    assert len(sender.unanswered) == CONNECTIONS

    second = start_hl7_server(tmp_path, mllp_port)
    try:
        # a real sender resends what was never acknowledged
        async def resend() -> list[str | None]:
            async with MllpClient("127.0.0.1", mllp_port) as client:
                return [ack_code(await client.send(message(n))) for n in sender.unanswered]

        assert asyncio.run(resend()) == ["AA"] * CONNECTIONS
        with httpx.Client(base_url=second.base, timeout=10) as http:
            deadline = time.monotonic() + 20  # start-up recovery runs in the background
            while _received(http) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _received(http) == 0
            for n in acked:
                assert _total(http, f"Patient?identifier=MRN-K{n}") == 1, n
            processed = http.get("/hl7/v2/failed", params={"status": "processed"}).json()
            assert processed["total"] == len(acked) + CONNECTIONS
            assert _total(http, "Patient?_summary=count") == processed["total"]
            assert _total(http, "Observation?_summary=count") == 5 * processed["total"]
            assert http.get("/hl7/v2/failed").json()["total"] == 0
    finally:
        second.stop()


def _received(http: httpx.Client) -> int:
    total: int = http.get("/hl7/v2/failed", params={"status": "received"}).json()["total"]
    return total
