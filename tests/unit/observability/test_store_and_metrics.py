"""``MeteredStore`` times calls and errors; registries per app never clash."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.observability import MeteredStore, Metrics, unwrap
from fhir_server.storage.base import StoreUnavailable


class _Store:
    path = "/data/x.db"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def read(self, resource_type: str, resource_id: str) -> Any:
        self.calls.append(f"{resource_type}/{resource_id}")
        return {"ok": True}

    async def commit(self, batch: Any) -> None:
        raise StoreUnavailable("down")


async def test_calls_are_timed_and_errors_counted_by_class() -> None:
    metrics = Metrics()
    inner = _Store()
    store = MeteredStore(inner, metrics=metrics)
    assert await store.read("Patient", "p1") == {"ok": True}
    assert await store.read("Patient", "p2") == {"ok": True}
    with pytest.raises(StoreUnavailable):
        await store.commit(None)
    reg = metrics.registry
    count = "medicore_store_operation_duration_seconds_count"
    assert reg.get_sample_value(count, {"operation": "read"}) == 2
    assert reg.get_sample_value(count, {"operation": "commit"}) == 1
    errors = "medicore_store_errors_total"
    assert reg.get_sample_value(errors, {"operation": "commit", "error": "StoreUnavailable"}) == 1
    assert inner.calls == ["Patient/p1", "Patient/p2"]
    assert store.path == "/data/x.db"  # other attributes pass through
    assert unwrap(MeteredStore(store, metrics=metrics)) is inner


def test_two_apps_have_separate_registries() -> None:
    a, b = Metrics(), Metrics()
    a.requests.labels("read", "Patient", "200").inc()
    labels = {"interaction": "read", "resource_type": "Patient", "status": "200"}
    assert a.registry.get_sample_value("medicore_http_requests_total", labels) == 1
    assert b.registry.get_sample_value("medicore_http_requests_total", labels) is None
