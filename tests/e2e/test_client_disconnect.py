"""A client that hangs up mid-body, against the real server (issue #16): a client error,
logged as one line (no traceback, no PHI), no server error in the metrics, and audited."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.e2e
SECRET_NAME = "Zelda-Disconnect"  # stands for PHI: it must appear in no log line


def _hang_up_mid_body(server: RunningServer, path: str) -> None:
    host, port = server.base.removeprefix("http://").split(":")
    body = json.dumps({"resourceType": "Patient", "name": [{"family": SECRET_NAME}]}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body) + 500}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + body)  # 500 bytes short of what was announced
        time.sleep(0.3)  # the server is now waiting for the rest of the body


def _log_lines(server: RunningServer, marker: str, *, settle: float = 10) -> list[str]:
    """The server's log lines once one containing ``marker`` has been written."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        lines = server.log_path.read_text(encoding="utf-8").splitlines()
        if any(marker in line for line in lines):
            return lines
        time.sleep(0.05)
    return server.log_path.read_text(encoding="utf-8").splitlines()


def _server_errors(server: RunningServer) -> float:
    text = httpx.get(f"{server.base}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("medicore_http_errors_total{") and 'status="5' in line
    )


def test_a_client_hanging_up_mid_body_is_one_line_and_no_server_error(
    server: RunningServer,
) -> None:
    before = len(server.log_path.read_text(encoding="utf-8").splitlines())
    _hang_up_mid_body(server, "/fhir/Patient")
    lines = _log_lines(server, '"status":499')[before:]
    text = "\n".join(lines)
    assert "Traceback" not in text and "unhandled error" not in text, text
    assert SECRET_NAME not in text
    about_it = [line for line in lines if "disconnected" in line]
    assert len(about_it) == 1, text
    access = [json.loads(line) for line in lines if '"event":"request"' in line]
    assert [(a["method"], a["status"]) for a in access] == [("POST", 499)], text
    assert _server_errors(server) == 0
    # The server goes on serving, and the refused request left its AuditEvent.
    events = httpx.get(f"{server.base}/fhir/AuditEvent?outcome=4", timeout=5).json()
    assert [e["resource"]["subtype"][0]["code"] for e in events.get("entry", [])] == ["create"]
