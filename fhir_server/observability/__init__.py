"""Operations view of the server: metrics, JSON logs with request ids, health probes.

Wiring (in ``create_app``)::

    metrics = Metrics()
    the_store = MeteredStore(store_from_uri(...), metrics=metrics)
    ...
    obs = install_observability(app, settings, metrics=metrics)
    obs.health.register("mllp", listener_check)       # other parts add their checks
    obs.metrics.add_refresher(count_dead_letters)      # gauges read at scrape time
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from fhir_server.hl7.inbox import KIND as HL7_INBOX_KIND
from fhir_server.observability.health import (
    CheckFailed,
    HealthRegistry,
    build_router,
    disk_space_check,
    store_writable_check,
)
from fhir_server.observability.logs import configure_logging, get_logger
from fhir_server.observability.metrics import Metrics
from fhir_server.observability.middleware import ObservabilityMiddleware
from fhir_server.observability.settings import ObservabilitySettings
from fhir_server.observability.store import MeteredStore, unwrap

__all__ = [
    "CheckFailed",
    "HealthRegistry",
    "MeteredStore",
    "Metrics",
    "Observability",
    "ObservabilitySettings",
    "configure_logging",
    "get_logger",
    "install_observability",
    "unwrap",
]

_OWNED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})


@dataclass(slots=True)
class Observability:
    """What :func:`install_observability` set up, also found on ``app.state``."""

    metrics: Metrics
    health: HealthRegistry
    settings: ObservabilitySettings


def install_observability(
    app: FastAPI,
    settings: Any = None,
    *,
    metrics: Metrics | None = None,
) -> Observability:
    """Add the middleware, ``/metrics`` and the health probes (replacing any existing ones).

    ``settings`` may be an :class:`ObservabilitySettings`; anything else (e.g. the core
    ``Settings``) is ignored and the thresholds come from ``MEDICORE_*`` variables.
    Call it before the app serves its first request; ``app.state.store`` must be set.
    A second call returns the first call's result unchanged.
    """
    existing = getattr(app.state, "observability", None)
    if isinstance(existing, Observability):
        return existing  # idempotent: a second call must not stack middleware
    obs_settings = (
        settings if isinstance(settings, ObservabilitySettings) else ObservabilitySettings()
    )
    metrics = metrics or Metrics()
    if obs_settings.json_logs:
        configure_logging(level=obs_settings.log_level)
    health = HealthRegistry(timeout_s=obs_settings.check_timeout_s, metrics=metrics)
    store = app.state.store
    health.register("store", store_writable_check(store))
    health.register(
        "disk",
        disk_space_check(_data_dir(store, obs_settings), min_free_mb=obs_settings.disk_min_free_mb),
    )
    app.state.metrics = metrics
    app.state.health = health
    metrics.add_refresher(_dead_letter_refresher(store, metrics))

    before = list(app.router.routes)
    app.include_router(build_router(lambda request: request.app.state.health))
    if obs_settings.metrics_enabled:

        @app.get("/metrics", include_in_schema=False)
        async def metrics_endpoint(request: Request) -> Response:
            body, content_type = await request.app.state.metrics.render()
            return Response(body, media_type=content_type)

    # Ours first (the first full match wins), and any older probe routes dropped.
    old_ids = {id(route) for route in before}
    ours = [route for route in app.router.routes if id(route) not in old_ids]
    app.router.routes[:] = ours + [route for route in before if not _owned(route)]

    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, slow_ms=obs_settings.slow_request_ms
    )
    obs = Observability(metrics=metrics, health=health, settings=obs_settings)
    app.state.observability = obs
    return obs


def _dead_letter_refresher(store: Any, metrics: Metrics) -> Callable[[], Awaitable[None]]:
    """At each scrape: HL7 messages in status ``failed`` (cheap: an indexed count)."""

    async def refresh() -> None:
        failed = await store.count_records(HL7_INBOX_KIND, where={"status": "failed"})
        metrics.set_dead_letter_depth(failed)

    return refresh


def _owned(route: BaseRoute) -> bool:
    """A route, or an included router all of whose routes, serving a path we now own."""
    path = getattr(route, "path", None)
    if path is not None:
        return path in _OWNED_PATHS
    original = getattr(route, "original_router", None)
    prefix = getattr(getattr(route, "include_context", None), "prefix", "")
    paths = [prefix + getattr(r, "path", "") for r in getattr(original, "routes", [])]
    return bool(paths) and all(p in _OWNED_PATHS for p in paths)


def _data_dir(store: Any, settings: ObservabilitySettings) -> Path:
    if settings.data_dir:
        return Path(settings.data_dir)
    path = getattr(unwrap(store), "path", None)
    if isinstance(path, Path):
        return path.parent.resolve()
    return Path.cwd()
