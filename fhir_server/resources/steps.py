"""Long loops on the event loop, cut into steps so that small requests run in between."""

from __future__ import annotations

import asyncio

# Items per step: bench/bounds.py measured 3-9 ms steps over a 1,000-entry transaction's
# entries; 64 entries keep each step well under a millisecond.
STEP = 64


async def pause_every(index: int, step: int = STEP) -> None:
    """Yield to the event loop before item ``index`` once every ``step`` items."""
    if index and index % step == 0:
        await asyncio.sleep(0)
