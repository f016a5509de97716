"""Recently verified bearer tokens, so a client's burst of requests verifies its token once.

An entry lives at most ``ttl`` seconds (and never past the token's ``exp``): a token
revoked meanwhile keeps working for at most that long in this process.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from auth.decision import Principal


class PrincipalCache:
    def __init__(self, *, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, until = entry
        if time.monotonic() >= until:
            del self._entries[token]
            return None
        return principal

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def put(self, token: str, principal: Principal, *, expires_at: float | None) -> None:
        until = time.monotonic() + self.ttl
        if expires_at is not None:
            until = min(until, time.monotonic() + max(0.0, expires_at - time.time()))
        self._entries[token] = (principal, until)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
