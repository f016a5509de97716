"""Recently verified bearer tokens, so a client's burst of requests verifies its token once.

What is kept is the verification (signature, claims, the client's registration), never
the answer to "is it revoked?": `authenticate.principal_from_token` looks that up in the
store on every use, so a revocation made by any process or host holds from the next
request. An entry lives at most ``ttl`` seconds, and never past the token's ``exp``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from auth.decision import Principal


@dataclass(frozen=True, slots=True)
class Verified:
    """A token whose signature and claims checked out; ``jti`` is what revocation keys on."""

    principal: Principal
    jti: str | None  # None: an IdP token that carries none (it cannot be revoked here)


class PrincipalCache:
    def __init__(
        self,
        *,
        ttl: float = 5.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock  # measures the ttl
        self._wall = wall  # compared with the token's exp
        self._entries: OrderedDict[str, tuple[Verified, float]] = OrderedDict()

    def get(self, token: str) -> Verified | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        verified, until = entry
        if self._clock() >= until:
            del self._entries[token]
            return None
        return verified

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def put(self, token: str, verified: Verified, *, expires_at: float | None) -> None:
        now = self._clock()
        until = now + self.ttl
        if expires_at is not None:
            until = min(until, now + max(0.0, expires_at - self._wall()))
        self._entries[token] = (verified, until)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


__all__ = ["PrincipalCache", "Verified"]
