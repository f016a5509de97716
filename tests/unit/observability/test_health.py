"""The readiness registry: per-check status and timing, timeouts, warnings, disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fhir_server.observability.health import CheckFailed, HealthRegistry, disk_space_check


async def test_statuses_timeouts_and_unexpected_errors() -> None:
    registry = HealthRegistry(timeout_s=0.05)

    async def ok() -> str | None:
        return "fine"

    async def hangs() -> str | None:
        await asyncio.sleep(5)
        return None

    async def crashes() -> str | None:
        raise RuntimeError("row for patient Kim")

    async def degraded() -> str | None:
        raise CheckFailed("replica lag 30 s")

    registry.register("ok", ok)
    registry.register("hangs", hangs)
    registry.register("crashes", crashes)
    registry.register("degraded", degraded, critical=False)
    passed, body = await registry.run()
    assert not passed and body["status"] == "fail"
    checks = body["checks"]
    assert checks["ok"]["status"] == "pass" and checks["ok"]["message"] == "fine"
    assert checks["hangs"] == {
        "status": "fail",
        "message": "no answer within 0.05 s",
        "duration_ms": checks["hangs"]["duration_ms"],
    }
    assert checks["hangs"]["duration_ms"] >= 40
    assert checks["crashes"]["message"] == "check raised RuntimeError"  # not its text
    assert checks["degraded"]["status"] == "warn"
    registry.unregister("hangs")
    registry.unregister("crashes")
    assert (await registry.run())[0] is True


async def test_disk_check_threshold(tmp_path: Path) -> None:
    assert await disk_space_check(tmp_path / "not" / "yet", min_free_mb=1)() is not None
    try:
        await disk_space_check(tmp_path, min_free_mb=10**12)()
    except CheckFailed as exc:
        assert "below the 1000000000000 MiB threshold" in str(exc)
    else:
        raise AssertionError("a petabyte threshold must fail")
