"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from fhir_server.storage.base import Store, StoreError

router = APIRouter(prefix="/health", tags=["operations"])


@router.get("/live")
async def live() -> JSONResponse:
    return JSONResponse({"status": "pass"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    store: Store = request.app.state.store
    started = time.perf_counter()
    try:
        await store.ping()
        check = {"status": "pass"}
    except StoreError:
        check = {"status": "fail", "message": "store unreachable or not writable"}
    check["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)  # type: ignore[assignment]
    ok = check["status"] == "pass"
    return JSONResponse(
        {"status": "pass" if ok else "fail", "checks": {"store": check}},
        status_code=200 if ok else 503,
    )
