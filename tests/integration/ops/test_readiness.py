"""Readiness answers per-check JSON and flips to 503 while the store is unreachable."""

from __future__ import annotations

from pathlib import Path

from fhir_server.observability import CheckFailed
from tests.integration.ops.conftest import OpsApp, make_ops_app


async def test_ready_lists_each_check_with_timings(ops: OpsApp) -> None:
    response = await ops.client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pass"
    assert set(body["checks"]) >= {"store", "disk"}
    for check in body["checks"].values():
        assert check["status"] == "pass"
        assert check["duration_ms"] >= 0
    assert (await ops.client.get("/health/live")).json() == {"status": "pass"}


async def test_ready_flips_to_503_when_the_store_file_vanishes_and_back(ops: OpsApp) -> None:
    moved = ops.db_path.with_name("elsewhere.db")
    ops.db_path.rename(moved)  # e.g. the data volume was unmounted under the server
    try:
        down = await ops.client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["status"] == "fail"
        assert down.json()["checks"]["store"]["status"] == "fail"
        assert down.json()["checks"]["disk"]["status"] == "pass"
        # Liveness stays up: the process is fine, restarting it would not help.
        assert (await ops.client.get("/health/live")).status_code == 200
    finally:
        moved.rename(ops.db_path)
    up = await ops.client.get("/health/ready")
    assert up.status_code == 200
    assert up.json()["checks"]["store"]["status"] == "pass"
    gauge = ops.metrics.registry.get_sample_value("medicore_health_check_up", {"check": "store"})
    assert gauge == 1.0


async def test_checks_registered_by_other_parts_decide_readiness(ops: OpsApp) -> None:
    listening = {"mllp": True}

    async def mllp_check() -> str | None:
        if not listening["mllp"]:
            raise CheckFailed("MLLP listener not accepting")
        return None

    async def audit_lag() -> str | None:
        raise CheckFailed("audit index 5 minutes behind")

    ops.app.state.health.register("mllp", mllp_check)
    ops.app.state.health.register("audit-index", audit_lag, critical=False)
    ok = await ops.client.get("/health/ready")
    assert ok.status_code == 200
    assert ok.json()["checks"]["audit-index"]["status"] == "warn"
    listening["mllp"] = False
    failed = await ops.client.get("/health/ready")
    assert failed.status_code == 503
    assert failed.json()["checks"]["mllp"] == {
        "status": "fail",
        "message": "MLLP listener not accepting",
        "duration_ms": failed.json()["checks"]["mllp"]["duration_ms"],
    }


async def test_disk_below_threshold_fails_readiness(tmp_path: Path) -> None:
    async for running in make_ops_app(tmp_path, disk_min_free_mb=10**12):
        response = await running.client.get("/health/ready")
        assert response.status_code == 503
        disk = response.json()["checks"]["disk"]
        assert disk["status"] == "fail"
        assert "below the 1000000000000 MiB threshold" in disk["message"]
