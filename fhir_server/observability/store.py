"""``MeteredStore``: times every store call into the metrics, whatever the adapter."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fhir_server.observability.metrics import Metrics

# Coroutine methods of the Store contract and of the audit sink that get timed; any other
# attribute (``path``, ``client``, ``iter_audit``...) is passed through untouched.
TIMED_METHODS = frozenset(
    {
        "ping",
        "read",
        "vread",
        "history",
        "search",
        "count_matches",
        "commit",
        "counts",
        "get_record",
        "find_records",
        "count_records",
        "audit_head",
        "audit_bounds",
    }
)


class MeteredStore:
    """A proxy around any object with the Store methods; ``inner`` is the real store."""

    def __init__(self, inner: Any, *, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in TIMED_METHODS or not callable(attr):
            return attr
        timed = _timed(attr, operation=name, metrics=self._metrics)
        setattr(self, name, timed)  # cache: the next lookup skips __getattr__
        return timed


def _timed(
    fn: Callable[..., Awaitable[Any]], *, operation: str, metrics: Metrics
) -> Callable[..., Awaitable[Any]]:
    latency = metrics.store_latency.labels(operation)

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            metrics.store_errors.labels(operation, type(exc).__name__).inc()
            raise
        finally:
            latency.observe(time.perf_counter() - started)

    return call


def unwrap(store: Any) -> Any:
    """The adapter under any number of proxies (for code that needs e.g. ``path``)."""
    while isinstance(store, MeteredStore):
        store = store.inner
    return store
