"""Group commit for audit-only writes (reads, searches, refusals).

Every read must leave a durable AuditEvent before its answer, so each read waits on a
commit. Requests that arrive while one commit is in flight are gathered and committed
together by one task, as one batch: one hand-off to the store and one durable sync for
the whole group instead of one per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fhir_server.storage.base import ConditionalConflict, Store, WriteBatch

_MAX_GROUP = 512  # events per commit: bounds one commit's latency
_ATTEMPTS = 8


class AuditBatcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Times each group commit (the audit write latency metric); set by the app.
        self.timer: Callable[[], AbstractContextManager[None]] = nullcontext
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def commit(self, events: list[dict[str, Any]]) -> None:
        """Return once ``events`` are durable; raise what the store raised otherwise."""
        if not events:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            group, size = [], 0
            while self._pending and size < _MAX_GROUP:
                events, done = self._pending.pop(0)
                group.append((events, done))
                size += len(events)
            try:
                await self._commit_group([e for events, _ in group for e in events])
            except BaseException as exc:  # every waiter learns the outcome
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _, done in group:
                if not done.done():
                    done.set_result(None)

    async def _commit_group(self, events: list[dict[str, Any]]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                with self.timer():
                    await self.store.commit(WriteBatch(audit=events))
                return
            except ConditionalConflict:  # another writer moved the chain (MongoDB)
                await asyncio.sleep(0.002 * 2**attempt)
        raise ConditionalConflict("the audit chain stayed contended")
