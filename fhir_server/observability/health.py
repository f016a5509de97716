"""Liveness and readiness with per-check status and timings; others register checks.

A check is an async callable that returns ``None`` (pass) or a short PHI-free string
(the detail of a warning), and raises :class:`CheckFailed` (or anything else) to fail.
Checks run concurrently, each within a time budget; readiness is 503 when a critical
check fails. The MLLP listener and the audit writer register their own checks::

    app.state.health.register("mllp", mllp_listener.check)
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from fhir_server.observability.metrics import Metrics
from fhir_server.storage.base import StoreError, StoreFull

CheckFn = Callable[[], Awaitable[str | None]]


class CheckFailed(Exception):
    """A check's failure; its message is shown to operators, so keep it PHI-free."""


@dataclass(slots=True)
class _Check:
    fn: CheckFn
    critical: bool


class HealthRegistry:
    """Named readiness checks; ``run()`` gives the probe's JSON body and pass/fail."""

    def __init__(self, *, timeout_s: float = 2.0, metrics: Metrics | None = None) -> None:
        self.timeout_s = timeout_s
        self.metrics = metrics
        self._checks: dict[str, _Check] = {}

    def register(self, name: str, fn: CheckFn, *, critical: bool = True) -> None:
        """Add (or replace) a check; a non-critical failure reports "warn", still 200."""
        self._checks[name] = _Check(fn, critical)

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._checks)

    async def run(self) -> tuple[bool, dict[str, Any]]:
        names = self.names
        results = await asyncio.gather(*(self._run_one(n, self._checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        ok = all(r["status"] != "fail" for r in checks.values())
        return ok, {"status": "pass" if ok else "fail", "checks": checks}

    async def _run_one(self, name: str, check: _Check) -> dict[str, Any]:
        started = time.perf_counter()
        result: dict[str, Any]
        try:
            detail = await asyncio.wait_for(check.fn(), timeout=self.timeout_s)
            result = {"status": "pass"}
            if detail:
                result["message"] = detail
        except TimeoutError:
            result = {"status": "fail", "message": f"no answer within {self.timeout_s:g} s"}
        except CheckFailed as exc:
            result = {"status": "fail", "message": str(exc)}
        except Exception as exc:  # an unexpected error: name its class, never its text
            result = {"status": "fail", "message": f"check raised {type(exc).__name__}"}
        if result["status"] == "fail" and not check.critical:
            result["status"] = "warn"
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if self.metrics is not None:
            self.metrics.readiness.labels(name).set(1 if result["status"] == "pass" else 0)
        return result


def store_writable_check(store: Any) -> CheckFn:
    """Readiness: the store answers and accepts a write (``Store.ping``); the failure
    says why (the stores' messages name the cause, never data)."""

    async def check() -> str | None:
        try:
            await store.ping()
        except StoreFull as exc:
            raise CheckFailed(f"store full, writes refused (507): {exc}") from exc
        except StoreError as exc:
            raise CheckFailed(f"store unreachable or not writable: {exc}") from exc
        return None

    return check


def disk_space_check(path: Path, *, min_free_mb: int) -> CheckFn:
    """Readiness: the filesystem holding ``path`` keeps at least ``min_free_mb`` free."""

    async def check() -> str | None:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            usage = await asyncio.to_thread(shutil.disk_usage, probe)
        except OSError as exc:
            raise CheckFailed("cannot stat the data directory") from exc
        free_mb = usage.free // (1024 * 1024)
        if free_mb < min_free_mb:
            raise CheckFailed(f"{free_mb} MiB free, below the {min_free_mb} MiB threshold")
        return f"{free_mb} MiB free"

    return check


def build_router(registry_of: Callable[[Request], HealthRegistry]) -> APIRouter:
    """``/health/live`` and ``/health/ready`` answering from the app's registry."""
    router = APIRouter(
        prefix="/health",
        tags=["operations"],
        responses={503: {"description": "Not ready: the failing checks, as JSON"}},
    )

    @router.get("/live")
    async def live() -> JSONResponse:
        return JSONResponse({"status": "pass"})

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        ok, body = await registry_of(request).run()
        return JSONResponse(body, status_code=200 if ok else 503)

    return router
