"""An ASGI client over the real app on a real SQLite file (and on MongoDB where asked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.settings import Settings
from tests.conftest import make_store


async def _client(kind: str, tmp_path: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    store, drop = await make_store(kind, tmp_path)
    base = {
        "store": f"sqlite:///{tmp_path / 'unused.db'}",
        "data_dir": str(tmp_path / "data"),
        "auth_required": False,  # these tests are about REST semantics; auth has its own
    }
    app = create_app(Settings(**{**base, **settings}), store=store, hl7=Hl7Settings(mllp_port=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
        if drop is not None:
            await store.client.drop_database(drop)  # type: ignore[attr-defined]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the embedded SQLite store."""
    async for c in _client("sqlite", tmp_path, max_body_bytes=200_000):
        yield c


@pytest.fixture(params=["sqlite", "mongo"])
async def any_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on each store in turn: behaviour must be identical."""
    async for c in _client(request.param, tmp_path):
        yield c


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app with authentication on (as in production), on SQLite."""
    async for c in _client("sqlite", tmp_path, auth_required=True):
        yield c


def mint(client: httpx.AsyncClient, *, role: str, scope: str, patient: str | None = None) -> str:
    """A token signed with the app's own key, as ``medicore token`` would print it."""
    from auth.tokens import issue_access_token

    ctx = client._transport.app.state.security  # type: ignore[attr-defined]
    issued = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject=f"{role}-user",
        client_id="ward-app",
        scope=scope,
        role=role,
        patient=patient,
        now=ctx.now(),
    )
    return str(issued.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
