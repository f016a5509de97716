"""The one source of "now" for token checks, so a test can set the time it means."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Wall-clock seconds since the epoch (what JWT `exp`/`iat` are compared with)."""


def system_clock() -> float:
    return time.time()


def seconds(clock: Clock) -> int:
    """The clock's reading as the whole seconds JWT claims carry."""
    return int(clock())


__all__ = ["Clock", "seconds", "system_clock"]
