"""The real app on a real SQLite file with observability installed, and its log lines."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.observability import (
    MeteredStore,
    Metrics,
    ObservabilitySettings,
)
from fhir_server.observability.logs import JsonFormatter
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SqliteStore


class LogCapture:
    """The JSON lines the ``medicore`` loggers wrote during a test."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("medicore")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@dataclass
class OpsApp:
    app: FastAPI
    client: httpx.AsyncClient
    db_path: Path

    @property
    def metrics(self) -> Metrics:
        metrics: Metrics = self.app.state.metrics
        return metrics


async def make_ops_app(tmp_path: Path, **obs: Any) -> AsyncIterator[OpsApp]:
    db_path = tmp_path / "ops.db"
    metrics = Metrics()
    store = MeteredStore(SqliteStore(db_path), metrics=metrics)
    settings = Settings(
        store=f"sqlite:///{db_path}",
        data_dir=str(tmp_path / "data"),
        auth_required=False,  # the auth layer has its own tests; here the principal is faked
    )
    app = create_app(
        settings,
        store=store,
        observability=ObservabilitySettings(**obs),
        hl7=Hl7Settings(mllp_port=0),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield OpsApp(app, client, db_path)


@pytest.fixture
async def ops(tmp_path: Path) -> AsyncIterator[OpsApp]:
    async for running in make_ops_app(tmp_path, slow_request_ms=60_000, disk_min_free_mb=1):
        yield running
