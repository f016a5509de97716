"""SIGKILL during a burst of creates, updates and transaction Bundles over HTTP.

Four clients write concurrently; the server is killed from the clients' event loop the
moment the ``KILL_AFTER``-th 2xx arrives. After the restart every 2xx is readable at the
version its ``Location``/``ETag`` named, no transaction is half-applied, the audit chain
verifies and AuditEvent search finds every record.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server
from tests.e2e.fault_helpers import audit_index_caught_up, report, store_uri, total

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CLIENTS = 4
KILL_AFTER = 60  # 2xx answers
SYSTEM = "urn:medicore:faults"


@dataclass
class Burst:
    pid: int
    base: str
    written: list[tuple[str, int]] = field(default_factory=list)  # (Type/id, version)
    transactions: dict[str, bool] = field(default_factory=dict)  # tag -> answered 2xx
    answered: int = 0
    refused: int = 0

    def ok(self) -> None:
        self.answered += 1
        if self.answered == KILL_AFTER:
            os.kill(self.pid, signal.SIGKILL)  # no shutdown hook runs

    async def client(self, c: int) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=20) as http:
            try:
                for i in itertools.count():
                    await self._round(http, f"{c}-{i}")
            except httpx.TransportError:
                return  # the server is gone: whatever was in flight is unanswered

    async def _round(self, http: httpx.AsyncClient, tag: str) -> None:
        created = await http.post("/fhir/Patient", json=patient(tag, "Created"))
        if not self._accept(created):
            return
        ref = created.headers["Location"].split("/_history/")[0].split("/fhir/")[1]
        self.written.append((ref, version_of(created)))
        self.ok()
        body = {**patient(tag, "Updated"), "id": ref.split("/")[1]}
        updated = await http.put(f"/fhir/{ref}", json=body)
        if self._accept(updated):
            self.written.append((ref, version_of(updated)))
            self.ok()
        for k in range(3):  # transactions take most of the time: most kills land in one
            await self._transaction(http, f"{tag}-{k}")

    async def _transaction(self, http: httpx.AsyncClient, tag: str) -> None:
        self.transactions[tag] = False
        bundle = await http.post("/fhir", json=transaction(tag))
        if self._accept(bundle):
            self.transactions[tag] = True
            for entry in bundle.json()["entry"]:
                location = entry["response"]["location"].split("/fhir/")[-1]
                ref, _, version = location.partition("/_history/")
                self.written.append((ref, int(version)))
            self.ok()

    def _accept(self, response: httpx.Response) -> bool:
        if response.is_success:
            return True
        assert response.status_code == 503, response.text  # the store is busy: retry later
        self.refused += 1
        return False


def version_of(response: httpx.Response) -> int:
    etag = response.headers["ETag"]
    assert etag.startswith('W/"'), etag
    version = int(etag[3:-1])
    assert response.headers["Location"].endswith(f"/_history/{version}")
    return version


def patient(tag: str, family: str) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": f"P-{tag}"}],
        "name": [{"family": family}],
    }


def transaction(tag: str) -> dict[str, object]:
    """A Patient and two Observations about it: all three or none."""
    subject = f"urn:uuid:00000000-0000-4000-8000-{abs(hash(tag)) % 10**12:012d}"
    observations = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-9000-{n:012d}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "identifier": [{"system": SYSTEM, "value": f"TX-{tag}"}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                "subject": {"reference": subject},
                "valueQuantity": {"value": n, "unit": "mg/dL"},
            },
            "request": {"method": "POST", "url": "Observation"},
        }
        for n in (1, 2)
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": subject,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": SYSTEM, "value": f"TX-{tag}"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            *observations,
        ],
    }


async def burst(running_pid: int, base: str) -> Burst:
    state = Burst(running_pid, base)
    await asyncio.gather(*(state.client(c) for c in range(CLIENTS)))
    return state


# MongoDB: the restart waits out the killed process's open transaction (test_hl7_kill.py).
@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("mongo", marks=pytest.mark.needs_transactions)]
)
def test_sigkill_during_http_writes_keeps_every_2xx(tmp_path: Path, kind: str) -> None:
    with store_uri(kind, tmp_path) as uri:
        first = start_server(tmp_path, "--store", uri)
        state = asyncio.run(burst(first.process.pid, first.base))
        assert first.process.wait(timeout=30) == -signal.SIGKILL
        assert state.answered >= KILL_AFTER

        second = start_server(tmp_path, "--store", uri)
        try:
            with httpx.Client(base_url=second.base, timeout=30) as http:
                unreadable = []
                for ref, version in state.written:
                    at = http.get(f"/fhir/{ref}/_history/{version}")
                    current = http.get(f"/fhir/{ref}")
                    if at.status_code != 200 or at.headers["ETag"] != f'W/"{version}"':
                        unreadable.append((ref, version, at.status_code))
                    elif int(current.json()["meta"]["versionId"]) < version:
                        unreadable.append((ref, version, "older current version"))
                assert unreadable == [], unreadable
                half: list[tuple[str, int, int]] = []
                in_flight_whole = 0
                for tag, answered in state.transactions.items():
                    got = (
                        total(http, f"Patient?identifier={SYSTEM}|TX-{tag}&_summary=count"),
                        total(http, f"Observation?identifier={SYSTEM}|TX-{tag}&_summary=count"),
                    )
                    if got not in ((1, 2), (0, 0)) or (answered and got != (1, 2)):
                        half.append((tag, *got))
                    in_flight_whole += not answered and got == (1, 2)
                assert half == [], half
                records = audit_index_caught_up(http, tmp_path, uri)
        finally:
            second.stop()
    acked_tx = sum(state.transactions.values())
    report(
        f"HTTP kill -9 ({kind}, {CLIENTS} clients) after {state.answered} 2xx"
        f" ({len(state.written)} versions, {acked_tx} transactions of 3 entries):"
        f" all readable at the returned version, 0 lost;"
        f" {len(state.transactions) - acked_tx} unanswered transactions: {in_flight_whole}"
        f" whole, the rest absent, 0 half-applied; audit chain verified ({records} records),"
        f" all searchable"
    )
