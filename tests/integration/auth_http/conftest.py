"""The real app (create_app + install_security) over an ASGI transport, on either store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.security import install_security
from fhir_server.security.context import SecurityContext
from fhir_server.security.settings import SecuritySettings
from fhir_server.settings import Settings
from tests.clock import ManualClock
from tests.conftest import make_store
from tests.integration.auth_http.helpers import REQUEST_BASE


@dataclass
class AuthApp:
    app: FastAPI
    client: httpx.AsyncClient
    ctx: SecurityContext
    clock: ManualClock  # the app's clock: tokens are signed and checked at its reading


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing-key directory for the session: RSA key generation is slow."""
    return tmp_path_factory.mktemp("keys") / "keys"


async def _auth_app(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys_dir: Path, **security: Any
) -> AsyncIterator[AuthApp]:
    # Whoever builds a SecurityContext from the environment uses the test's key dir.
    monkeypatch.setenv("MEDICORE_KEYS_DIR", str(keys_dir))
    store, drop = await make_store(kind, tmp_path)
    settings = Settings(store=f"sqlite:///{tmp_path / 'unused.db'}")
    app = create_app(settings, store=store, hl7=Hl7Settings(mllp_port=0))
    sec = SecuritySettings(keys_dir=keys_dir, **security)
    if getattr(app.state, "security", None) is None:  # until create_app installs it itself
        install_security(app, settings, store, security=sec)
    clock = ManualClock()
    app.state.security = SecurityContext.build(settings, store, security=sec, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=REQUEST_BASE) as client:
            yield AuthApp(app=app, client=client, ctx=app.state.security, clock=clock)
        if drop is not None:
            await store.client.drop_database(drop)  # type: ignore[attr-defined]


@pytest.fixture
async def auth_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys_dir: Path
) -> AsyncIterator[AuthApp]:
    """The app on SQLite."""
    async for a in _auth_app("sqlite", tmp_path, monkeypatch, keys_dir):
        yield a


@pytest.fixture(params=["sqlite", "mongo"])
async def any_auth_app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys_dir: Path,
) -> AsyncIterator[AuthApp]:
    """The app on each store in turn."""
    async for a in _auth_app(request.param, tmp_path, monkeypatch, keys_dir):
        yield a
