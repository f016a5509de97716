"""Remote JWKS documents (client `jwks_url`, hospital IdP) fetched with httpx and cached.

A cached set is reused for `ttl` seconds; an unknown `kid` forces one refetch, at most
once per `min_refetch` seconds per URL, so a flood of bogus kids cannot hammer the IdP.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

Fetch = Callable[[str], Awaitable[dict[str, Any]]]
_MAX_BYTES = 256 * 1024


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def https_or_loopback(url: str) -> bool:
    """An https URL, or http to this machine (development). The host is compared whole:
    ``http://localhost.evil.example`` and ``http://localhost@evil`` are not loopback."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


class JwksUnavailable(Exception):
    """The JWKS could not be fetched or is not a JWKS (never carries the body)."""


async def http_fetch(url: str) -> dict[str, Any]:
    """GET a JWKS over HTTPS (or HTTP on loopback, for development)."""
    if not https_or_loopback(url):
        raise JwksUnavailable("JWKS URLs must use https")
    try:
        async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise JwksUnavailable(f"JWKS fetch failed ({type(exc).__name__})") from None
    if response.status_code != 200 or len(response.content) > _MAX_BYTES:
        raise JwksUnavailable(f"JWKS fetch answered {response.status_code}")
    try:
        doc = response.json()
    except ValueError:
        raise JwksUnavailable("JWKS is not JSON") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise JwksUnavailable("JWKS has no keys array of objects")
    return doc


class JwksCache:
    """Per-URL cache in front of a fetch function (replaceable in tests)."""

    def __init__(
        self,
        fetch: Fetch = http_fetch,
        *,
        ttl: int = 300,
        min_refetch: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def get(self, url: str, *, kid: str | None = None) -> dict[str, Any]:
        """The JWKS at `url`; refetched when stale or when it lacks `kid`."""
        now = self.clock()
        cached = self._cache.get(url)
        if cached is not None:
            fetched_at, doc = cached
            fresh = now - fetched_at < self.ttl
            has_kid = kid is None or any(k.get("kid") == kid for k in doc.get("keys", []))
            if fresh and (has_kid or now - fetched_at < self.min_refetch):
                return doc
        doc = await self.fetch(url)
        self._cache[url] = (now, doc)
        return doc


__all__ = ["Fetch", "JwksCache", "JwksUnavailable", "http_fetch"]
