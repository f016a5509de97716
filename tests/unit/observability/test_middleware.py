"""The middleware counts every request; log lines are built only when they are written."""

from __future__ import annotations

import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from fhir_server.observability import Metrics
from fhir_server.observability.middleware import ObservabilityMiddleware


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _call(app: ObservabilityMiddleware, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": headers}
    await app(scope, receive, send)
    return sent


async def test_counted_but_not_logged_when_the_access_log_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    app = ObservabilityMiddleware(_ok, metrics=metrics, slow_ms=60_000)
    with caplog.at_level(logging.WARNING, logger="medicore.access"):
        sent = await _call(app, [(b"x-request-id", b"first"), (b"x-request-id", b"second")])
    assert [r for r in caplog.records if r.name == "medicore.access"] == []
    labels = {"interaction": "unmatched", "resource_type": "-", "status": "200"}
    assert metrics.registry.get_sample_value("medicore_http_requests_total", labels) == 1
    assert (b"x-request-id", b"first") in sent[0]["headers"]


async def test_slow_requests_are_logged_even_when_the_access_log_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = ObservabilityMiddleware(_ok, metrics=Metrics(), slow_ms=0)
    with caplog.at_level(logging.WARNING, logger="medicore.access"):
        await _call(app, [])
    assert [r.getMessage() for r in caplog.records if r.name == "medicore.slow"] == ["slow_request"]
