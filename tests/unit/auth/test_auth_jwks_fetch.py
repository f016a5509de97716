"""A remote JWKS that is not a keys array of objects is `JwksUnavailable`, never a crash."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhir_server.security import jwks_fetch
from fhir_server.security.clients import ClientConfigError, client_record
from fhir_server.security.jwks_fetch import (
    JwksCache,
    JwksUnavailable,
    http_fetch,
    https_or_loopback,
)
from tests.clock import ManualClock


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

    clock = ManualClock(100.0)
    cache = JwksCache(fetch, ttl=300, min_refetch=10, clock=clock)
    await cache.get("u", kid="a")
    await cache.get("u", kid="a")
    assert len(calls) == 1
    clock.advance(9)
    await cache.get("u", kid="zzz")  # unknown kid, but fetched 9 s ago: no refetch yet
    assert len(calls) == 1
    clock.advance(2)
    await cache.get("u", kid="zzz")
    assert len(calls) == 2


async def test_cache_refetches_once_the_ttl_has_passed() -> None:
    calls: list[str] = []

    async def fetch(url: str) -> dict[str, Any]:
        calls.append(url)
        return {"keys": [{"kid": "a"}]}

    clock = ManualClock(0.0)
    cache = JwksCache(fetch, ttl=300, clock=clock)
    await cache.get("u", kid="a")
    clock.advance(299)
    await cache.get("u", kid="a")
    assert len(calls) == 1
    clock.advance(1)
    await cache.get("u", kid="a")
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://apps.example/cb", True),
        ("http://127.0.0.1:8000/cb", True),
        ("http://localhost/cb", True),
        ("http://[::1]:9000/jwks", True),
        ("http://localhost.evil.example/cb", False),
        ("http://127.0.0.1.evil.example/jwks", False),
        ("http://localhost@evil.example/cb", False),
        ("http://apps.example/cb", False),
        ("ftp://localhost/cb", False),
        ("https:///no-host", False),
        ("http://[::1/broken", False),
    ],
)
def test_https_or_loopback_compares_the_whole_host(url: str, allowed: bool) -> None:
    assert https_or_loopback(url) is allowed


@pytest.mark.parametrize("field", ["redirect_uris", "jwks_url"])
def test_a_lookalike_loopback_host_is_refused_at_registration(field: str) -> None:
    lookalike = "http://localhost.evil.example/x"
    kwargs: dict[str, Any] = (
        {"redirect_uris": [lookalike]} if field == "redirect_uris" else {"jwks_url": lookalike}
    )
    with pytest.raises(ClientConfigError) as refused:
        client_record("app", scope="system/Patient.rs", **kwargs)
    assert refused.value.expression.startswith(field)
