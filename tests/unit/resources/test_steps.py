"""``pause_every``: a long loop lets other tasks run once every ``step`` items."""

from __future__ import annotations

import asyncio

from fhir_server.resources.steps import pause_every


async def test_other_tasks_run_between_steps_of_a_long_loop() -> None:
    seen: list[str] = []

    async def long_loop() -> None:
        for i in range(10):
            await pause_every(i, step=4)
            seen.append(f"item{i}")

    async def small_request() -> None:
        seen.append("small")

    loop_task = asyncio.create_task(long_loop())
    small_task = asyncio.create_task(small_request())  # ready while the loop's first step runs
    await asyncio.gather(loop_task, small_task)
    # The first step (items 0-3) runs whole; the small request runs at the first pause.
    assert seen.index("small") == 4
    assert [s for s in seen if s != "small"] == [f"item{i}" for i in range(10)]
