"""The indexer's supervisor survives a failed start, and the app still closes its store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from fhir_server import audit_indexer
from fhir_server.serving import processes
from fhir_server.settings import Settings
from tests.integration.ops.conftest import make_ops_app


async def test_a_failed_start_is_logged_and_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[float] = []

    async def no_fork(*args: Any, **kwargs: Any) -> Any:
        attempts.append(asyncio.get_running_loop().time())
        raise BlockingIOError("fork: resource temporarily unavailable")

    monkeypatch.setattr(processes.asyncio, "create_subprocess_exec", no_fork)
    monkeypatch.setattr(processes, "RESTART_WAIT", (0.01, 0.05))
    caplog.set_level(logging.WARNING, logger="medicore.serving")
    task = asyncio.create_task(audit_indexer.supervise(Settings()))

    async def three_attempts() -> None:
        while len(attempts) < 3 and not task.done():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(three_attempts(), timeout=5)
    assert len(attempts) == 3 and not task.done()  # it goes on trying
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "could not start (BlockingIOError)" in caplog.text


async def test_a_failed_indexer_task_does_not_skip_closing_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("indexing broke")

    monkeypatch.setattr("fhir_server.app.index_audit_forever", broken)
    async for running in make_ops_app(tmp_path):
        store = running.app.state.store
        assert (await running.client.get("/health/live")).status_code == 200
    assert store.inner._writer is None  # closed: the writer connection is gone
