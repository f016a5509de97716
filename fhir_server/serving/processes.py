"""Keep a child process running: start it, wait, restart it with backoff when it exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger("medicore.serving")

RESTART_WAIT = (1.0, 30.0)  # first and longest wait before restarting a dead process

OnChange = Callable[[int | None], None]  # the running pid, or None while there is none


async def keep_running(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    on_change: OnChange | None = None,
    stop_timeout: float = 10.0,
) -> None:
    """Run ``command`` until cancelled; on cancellation stop it (SIGTERM, then SIGKILL)."""
    loop = asyncio.get_running_loop()
    wait = RESTART_WAIT[0]
    while True:
        started = loop.time()
        try:
            # Its own session: a Ctrl-C on the terminal reaches the supervisor only, which
            # then stops its children in order (and they exit if it dies).
            process = await asyncio.create_subprocess_exec(
                *command, env=dict(env), pass_fds=tuple(pass_fds), start_new_session=True
            )
        except OSError as exc:  # fork or exec failed (no memory, no processes left)
            outcome = f"could not start ({type(exc).__name__})"
        else:
            if on_change is not None:
                on_change(process.pid)
            try:
                outcome = f"exited (code {await process.wait()})"
            except asyncio.CancelledError:
                await stop(process, timeout=stop_timeout)
                raise
            finally:
                if on_change is not None:
                    on_change(None)
        if loop.time() - started > RESTART_WAIT[1]:
            wait = RESTART_WAIT[0]  # it had been running fine: no backoff
        log.warning("%s %s; restarting in %.0f s", name, outcome, wait)
        await asyncio.sleep(wait)
        wait = min(wait * 2, RESTART_WAIT[1])


async def stop(process: asyncio.subprocess.Process, *, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
