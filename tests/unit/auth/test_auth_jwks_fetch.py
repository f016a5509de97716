"""A remote JWKS that is not a keys array of objects is `JwksUnavailable`, never a crash."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhir_server.security import jwks_fetch
from fhir_server.security.jwks_fetch import JwksCache, JwksUnavailable, http_fetch


@pytest.mark.parametrize("body", [{"keys": [1, "x"]}, {"keys": {}}, [], {"nokeys": []}])
async def test_malformed_jwks_documents_are_unavailable(
    monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    real = httpx.AsyncClient

    def client(**kwargs: Any) -> httpx.AsyncClient:
        return real(transport=httpx.MockTransport(answer), **kwargs)

    monkeypatch.setattr(jwks_fetch.httpx, "AsyncClient", client)
    with pytest.raises(JwksUnavailable):
        await http_fetch("https://idp.example/certs")


async def test_cache_refetches_for_an_unknown_kid_only_after_min_refetch() -> None:
    calls: list[str] = []

    async def fetch(url: str) -> dict[str, Any]:
        calls.append(url)
        return {"keys": [{"kid": "a"}]}

    cache = JwksCache(fetch, min_refetch=0)
    await cache.get("u", kid="a")
    await cache.get("u", kid="a")
    assert len(calls) == 1
    await cache.get("u", kid="zzz")
    assert len(calls) == 2
