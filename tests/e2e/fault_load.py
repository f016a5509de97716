"""A steady load for the outage tests: HTTP creates and MLLP messages, every answer kept.

Runs in its own thread until stopped; the test waits on answer counts (never on time).
A real sender resends what got an AE or no answer, so the MLLP sender does too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from fhir_server.hl7.client import MllpClient, ack_code
from fhir_server.hl7.mllp import FramingError
from tests.integration.hl7.messages import oru_r01

SYSTEM = "urn:medicore:outage"


def patient(n: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": f"L{n}"}]}


def lab(n: int) -> bytes:
    return oru_r01(f"OUT{n}", f"MRN-OUT{n}", order=f"ORD-OUT{n}")


@dataclass
class Load:
    base: str
    mllp_port: int
    http_clients: int = 2
    pause: float = 0.0  # between two creates of one client
    created: dict[int, str] = field(default_factory=dict)  # n -> Location of the 201
    refused: dict[int, httpx.Response] = field(default_factory=dict)  # n -> 503/507
    acks: Counter[str] = field(default_factory=Counter)
    acked: list[int] = field(default_factory=list)  # messages answered AA
    _next: int = 0
    _stop: bool = False

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop = True
        self.thread.join(timeout=60)

    def wait(self, what: str, probe: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            assert time.monotonic() < deadline, f"load: not within {timeout} s: {what}"
            assert self.thread.is_alive(), "the load stopped"
            time.sleep(0.02)

    async def _run(self) -> None:
        await asyncio.gather(
            *(self._http() for _ in range(self.http_clients)), self._mllp(), return_exceptions=False
        )

    async def _http(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as http:
            while not self._stop:
                n = self._next
                self._next += 1
                try:
                    answer = await http.post("/fhir/Patient", json=patient(n))
                except httpx.TimeoutException:
                    continue  # unanswered: neither promised nor refused
                if answer.status_code == 201:
                    self.created[n] = answer.headers["Location"]
                    await asyncio.sleep(self.pause)
                else:
                    self.refused[n] = answer
                    await asyncio.sleep(0.05)  # as Retry-After asks, in miniature

    async def _mllp(self) -> None:
        n = 0
        while not self._stop:
            try:
                async with MllpClient("127.0.0.1", self.mllp_port, timeout=60) as client:
                    while not self._stop:
                        code = ack_code(await client.send(lab(n))) or "none"
                        self.acks[code] += 1
                        if code == "AA":
                            self.acked.append(n)
                            n += 1  # an AE is resent until it is accepted
                        else:
                            await asyncio.sleep(0.05)
            except (OSError, TimeoutError, FramingError):
                self.acks["none"] += 1  # no answer: reconnect and resend, as senders do
                await asyncio.sleep(0.1)
