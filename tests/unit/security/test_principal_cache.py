"""The principal cache keeps verifications for a bounded time, on injected clocks."""

from __future__ import annotations

from auth.decision import Principal
from auth.scopes import ScopeSet
from fhir_server.security.principal_cache import PrincipalCache, Verified


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verified(jti: str | None = "j-1") -> Verified:
    principal = Principal(
        subject="dr.kim", role="doctor", client_id="app", scopes=ScopeSet.parse("user/*.rs")
    )
    return Verified(principal, jti)


def test_an_entry_lives_for_the_ttl() -> None:
    mono = Clock(100.0)
    cache = PrincipalCache(ttl=5.0, clock=mono, wall=Clock(1_000.0))
    cache.put("t", verified(), expires_at=None)
    mono.now = 104.9
    assert cache.get("t") == verified()
    mono.now = 105.0
    assert cache.get("t") is None


def test_an_entry_never_outlives_the_token() -> None:
    mono = Clock(100.0)
    cache = PrincipalCache(ttl=5.0, clock=mono, wall=Clock(1_000.0))
    cache.put("t", verified(), expires_at=1_002.0)  # the token expires in 2 s
    mono.now = 101.9
    assert cache.get("t") is not None
    mono.now = 102.0
    assert cache.get("t") is None
    cache.put("gone", verified(), expires_at=900.0)  # already expired: never served
    assert cache.get("gone") is None


def test_discard_and_size_bound() -> None:
    cache = PrincipalCache(size=2, clock=Clock(0.0), wall=Clock(0.0))
    for name in ("a", "b", "c"):
        cache.put(name, verified(name), expires_at=None)
    assert cache.get("a") is None  # the oldest went
    cache.discard("b")
    assert cache.get("b") is None
    assert cache.get("c") == verified("c")
