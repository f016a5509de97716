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
        # A store whose commits queue for one writer (SQLite) takes the next group while
        # one commits, so its writer goes on without waiting for the event loop between
        # groups; MongoDB's chain appends race each other, so there one at a time.
        self._max_in_flight = 2 if getattr(store, "queues_commits", False) else 1
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def commit(self, events: list[dict[str, Any]]) -> None:
        """Return once ``events`` are durable; raise what the store raised otherwise."""
        if not events:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, done))
        self._start_groups()
        await done

    def _start_groups(self) -> None:
        while self._pending and self._in_flight < self._max_in_flight:
            group, size = [], 0
            while self._pending and size < _MAX_GROUP:
                events, done = self._pending.pop(0)
                group.append((events, done))
                size += len(events)
            self._in_flight += 1
            task = asyncio.create_task(self._commit_and_tell(group))
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)

    async def _commit_and_tell(
        self, group: list[tuple[list[dict[str, Any]], asyncio.Future[None]]]
    ) -> None:
        try:
            await self._commit_group([e for events, _ in group for e in events])
        except BaseException as exc:  # every waiter learns the outcome
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for _, done in group:
                if not done.done():
                    done.set_result(None)
        finally:
            self._in_flight -= 1
            self._start_groups()

    async def _commit_group(self, events: list[dict[str, Any]]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                with self.timer():
                    await self.store.commit(WriteBatch(audit=events))
                return
            except ConditionalConflict:  # another writer moved the chain (MongoDB)
                await asyncio.sleep(0.002 * 2**attempt)
        raise ConditionalConflict("the audit chain stayed contended")
