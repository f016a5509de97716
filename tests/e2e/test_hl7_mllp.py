"""The real server over a real MLLP socket: ACKs, FHIR REST, replays, dead letters, CLI."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from fhir_server.hl7.client import MllpClient, ack_code
from tests.e2e.conftest import free_port
from tests.e2e.hl7_conftest import medicore, start_hl7_server
from tests.integration.hl7.messages import NOT_HL7, adt_a04, oru_r01


async def _send_all(port: int, messages: list[bytes]) -> list[bytes]:
    async with MllpClient("127.0.0.1", port, timeout=20) as client:
        return [await client.send(message) for message in messages]


def test_mllp_round_trip_replay_and_dead_letter(tmp_path: Path) -> None:
    mllp_port = free_port()
    server = start_hl7_server(tmp_path, mllp_port)
    try:
        result = oru_r01("E2E-1", "MRN-E2E")
        first, second, bad = asyncio.run(_send_all(mllp_port, [result, result, NOT_HL7]))
        assert first.split(b"\r")[1] == b"MSA|AA|E2E-1"
        assert second == first  # the original ACK, byte for byte
        assert ack_code(bad) == "AR"

        with httpx.Client(base_url=server.base, timeout=10) as http:
            patients = http.get("/fhir/Patient", params={"identifier": "MRN-E2E"}).json()
            assert patients["total"] == 1
            pid = patients["entry"][0]["resource"]["id"]
            observations = http.get("/fhir/Observation", params={"subject": f"Patient/{pid}"})
            assert observations.json()["total"] == 5  # not 10: the resend changed nothing
            listed = http.get("/hl7/v2/failed").json()
            assert [item["ack_code"] for item in listed["items"]] == ["AR"]

        shown = medicore(tmp_path, "hl7", "failed", "--store", f"sqlite:///{tmp_path / 'e2e.db'}")
        assert shown.returncode == 0, shown.stderr
        assert "1 message(s) in status failed" in shown.stdout
        assert "unparsed|" in shown.stdout and "\tAR\t100\t" in shown.stdout

        # the small sender of the CLI: a file with two messages, LF-separated
        sample = tmp_path / "two.hl7"
        sample.write_bytes(
            adt_a04("CLI-1", "MRN-CLI1").replace(b"\r", b"\n")
            + adt_a04("CLI-2", "MRN-CLI2").replace(b"\r", b"\n")
        )
        sent = medicore(tmp_path, "hl7", "send", str(sample), "--port", str(mllp_port))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.count(": AA") == 2
        assert "MSA|AA|CLI-2" in sent.stdout
    finally:
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log_path.read_text()
