"""Prometheus metrics, one registry per app so several apps (and tests) never clash.

Labels are bounded sets: interaction names, resource types, status codes, store
operation names, HL7 message types and ACK codes. Never an id, a path or a value.

In a worker of a supervised server (``PROMETHEUS_MULTIPROC_DIR`` set by the supervisor)
prometheus-client keeps every value in a file per process, and a scrape of any worker
exposes the sum over all of them: the whole server, not the worker that answered.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

Refresher = Callable[[], Awaitable[None]]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class Metrics:
    """Every MediCore metric; other parts set theirs through the public attributes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._refreshers: list[Refresher] = []
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        r = self.registry
        self.requests = Counter(
            "medicore_http_requests",
            "HTTP requests by FHIR interaction, resource type and status code",
            ["interaction", "resource_type", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "medicore_http_request_duration_seconds",
            "HTTP request latency by FHIR interaction and resource type",
            ["interaction", "resource_type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "medicore_http_errors",
            "HTTP responses with a 4xx or 5xx status, by status code",
            ["status"],
            registry=r,
        )
        self.active_requests = Gauge(
            "medicore_http_active_requests",
            "HTTP requests being served right now (in-flight connections)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.store_latency = Histogram(
            "medicore_store_operation_duration_seconds",
            "Store call latency by operation",
            ["operation"],
            buckets=_STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "medicore_store_errors",
            "Store calls that raised, by operation and error class",
            ["operation", "error"],
            registry=r,
        )
        self.hl7_messages = Counter(
            "medicore_hl7_messages",
            "HL7 v2 messages handled, by message type (e.g. ORU^R01) and ACK code",
            ["message_type", "ack_code"],
            registry=r,
        )
        self.hl7_control_id_reused = Counter(
            "medicore_hl7_control_id_reused",
            "HL7 messages refused (AE, kept as dead letters): a control id seen before, "
            "other content",
            registry=r,
        )
        self.hl7_dead_letters = Gauge(
            "medicore_hl7_dead_letter_depth",
            "HL7 messages kept for reprocessing (failed, not yet replayed)",
            registry=r,
            multiprocess_mode="mostrecent",  # read from the store: any worker's last look
        )
        self.mllp_connections = Gauge(
            "medicore_mllp_active_connections",
            "Open MLLP connections",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.audit_index_backlog = Gauge(
            "medicore_audit_index_backlog",
            "AuditEvents recorded but not yet searchable (the indexer's lag)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.audit_write_latency = Histogram(
            "medicore_audit_write_duration_seconds",
            "Time to make audit records durable",
            buckets=_STORE_BUCKETS,
            registry=r,
        )
        self.readiness = Gauge(
            "medicore_health_check_up",
            "1 when the named readiness check passed at its last run, else 0",
            ["check"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    # -- helpers for other parts of the server ---------------------------------------

    def observe_hl7(self, message_type: str, ack_code: str) -> None:
        """Count one HL7 message; ``message_type`` like ``ORU^R01``, ``ack_code`` AA/AE/AR."""
        self.hl7_messages.labels(message_type=_bounded(message_type), ack_code=ack_code).inc()

    def set_dead_letter_depth(self, depth: int) -> None:
        self.hl7_dead_letters.set(depth)

    @contextmanager
    def time_audit_write(self) -> Iterator[None]:
        """``with metrics.time_audit_write(): ...`` around the durable audit append."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.audit_write_latency.observe(time.perf_counter() - started)

    def add_refresher(self, refresher: Refresher) -> None:
        """An async callable run before each scrape, e.g. to count dead letters in the store."""
        self._refreshers.append(refresher)

    def watch_server(self, status_path: Path) -> None:
        """Expose a supervised server's worker counts, read from its status file."""
        r = self.registry
        expected = Gauge(
            "medicore_workers",
            "Worker processes the server runs",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        serving = Gauge(
            "medicore_workers_serving",
            "Worker processes running now",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        restarts = Gauge(
            "medicore_worker_restarts",
            "Workers restarted since the server started",
            registry=r,
            multiprocess_mode="mostrecent",
        )

        async def refresh() -> None:
            status = json.loads(status_path.read_text())
            expected.set(status["workers"])
            serving.set(len(status["serving"]))
            restarts.set(status["restarts"])

        self.add_refresher(refresh)

    async def render(self) -> tuple[bytes, str]:
        """Run the refreshers (a failing one is skipped), then the exposition text."""
        for refresher in self._refreshers:
            try:
                await refresher()
            except Exception:  # a broken gauge source must not break the scrape
                continue
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, path=self.multiprocess_dir)
        return generate_latest(every_worker), CONTENT_TYPE_LATEST


def _bounded(message_type: str) -> str:
    """HL7 types are short ``AAA^AAA`` tokens; anything else becomes ``other``."""
    ok = 0 < len(message_type) <= 16 and all(c.isalnum() or c in "^_" for c in message_type)
    return message_type if ok else "other"
