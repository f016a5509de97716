"""``--workers`` and what a worker is given."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fhir_server.hl7.settings import Hl7Settings
from fhir_server.observability.health import CheckFailed
from fhir_server.serving.plan import ServePlan, worker_count
from fhir_server.serving.status import ServerStatus, workers_check
from fhir_server.settings import Settings


def test_worker_count_is_a_positive_number_or_auto() -> None:
    assert worker_count("3") == 3
    assert worker_count("auto") == len(os.sched_getaffinity(0))
    for wrong in ("0", "-1", "many", ""):
        with pytest.raises(ValueError, match="--workers"):
            worker_count(wrong)


def test_a_worker_gets_the_settings_without_the_once_only_duties(tmp_path: Path) -> None:
    plan = ServePlan(
        Settings(store="sqlite:///x.db", port=9999, audit_indexer="process"),
        Hl7Settings(mllp_port=2999, hl7_sender_charsets={"LAB": "8859/1"}),
        log_level="warning",
        demo=True,
        workers=2,
    )
    path = tmp_path / "plan.json"
    plan.for_worker().write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # settings may name credentials
    worker = ServePlan.read(path)
    assert worker.settings.port == 9999 and worker.settings.store == "sqlite:///x.db"
    assert worker.settings.audit_indexer == "external"  # the supervisor indexes, once
    assert worker.hl7.hl7_recover_on_startup is False  # recovery ran before workers
    assert worker.hl7.hl7_sender_charsets == {"LAB": "8859/1"}
    assert worker.demo is False and worker.log_level == "warning"


async def test_readiness_describes_the_whole_server(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    check = workers_check(path)
    with pytest.raises(CheckFailed, match="cannot be read"):
        await check()
    ServerStatus(workers=2, serving=[11, 12], duties={"audit indexer": "running"}).save(path)
    assert await check() == "2 of 2 workers serving; audit indexer running"
    ServerStatus(workers=2, serving=[12], restarts=1, duties={"audit indexer": "running"}).save(
        path
    )
    with pytest.raises(CheckFailed, match="1 of 2 workers serving"):
        await check()
