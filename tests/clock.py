"""A clock tests set by hand: nothing a test checks may move with the wall clock."""

from __future__ import annotations

# 2023-11-14T22:13:20Z: far from any real "now", so a leak of the real clock fails a test
T0 = 1_700_000_000


class ManualClock:
    """Callable like `auth.clock.system_clock`; reads `now` until a test moves it."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


__all__ = ["T0", "ManualClock"]
