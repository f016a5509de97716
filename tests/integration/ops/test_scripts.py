"""ops/*.sh as cron runs them: real medicore commands, alerts through a configured command."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fhir_server.storage.sqlite import SqliteStore
from tests.integration.ops import drill_data

ROOT = Path(__file__).resolve().parents[3]
OPS = ROOT / "ops"
ALERT = 'cat > "$ALERT_DIR/text"; printf %s "$MEDICORE_ALERT_SUBJECT" > "$ALERT_DIR/subject"'


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(OPS / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    live = tmp_path / "live.db"

    async def load() -> None:
        store = SqliteStore(live, audit_key=b"script-key")
        await store.open()
        await drill_data.load(store, patients=10)
        await store.close()

    asyncio.run(load())
    (tmp_path / "alert").mkdir()
    return {
        "MEDICORE_CMD": f"{sys.executable} -m fhir_server.cli",
        "MEDICORE_STORE": f"sqlite:///{live}",
        "MEDICORE_AUDIT_KEY": "script-key",
        "MEDICORE_BACKUP_DIR": str(tmp_path / "backups"),
        "MEDICORE_BACKUP_COPY_TO": str(tmp_path / "offsite"),
        "MEDICORE_ALERT_COMMAND": ALERT,
        "ALERT_DIR": str(tmp_path / "alert"),
    }


def test_backup_then_restore_latest(env: dict[str, str], tmp_path: Path) -> None:
    done = run("backup.sh", env=env)
    assert done.returncode == 0, done.stderr
    archives = list(Path(env["MEDICORE_BACKUP_DIR"]).glob("medicore-sqlite-*.tar.gz"))
    assert len(archives) == 1
    assert (Path(env["MEDICORE_BACKUP_COPY_TO"]) / archives[0].name).is_file()
    assert not (tmp_path / "alert" / "text").exists()

    refused = run("restore.sh", "latest", env=env)  # the live store holds data
    assert refused.returncode == 3
    assert "--force" in refused.stderr

    target = {**env, "MEDICORE_STORE": f"sqlite:///{tmp_path / 'restored.db'}"}
    restored = run("restore.sh", "latest", env=target)
    assert restored.returncode == 0, restored.stderr
    assert '"counts_match": true' in restored.stdout
    assert drill_data.history_rows(tmp_path / "restored.db") == drill_data.history_rows(
        tmp_path / "live.db"
    )


def test_a_failed_backup_alerts_and_exits_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    broken = {**env, "MEDICORE_STORE": f"sqlite:///{tmp_path / 'gone' / 'x.db'}"}
    failed = run("backup.sh", env=broken)
    assert failed.returncode == 1
    assert "ALERT: MediCore backup FAILED" in failed.stderr
    text = (tmp_path / "alert" / "text").read_text()
    assert "does not exist" in text and "exited 1" in text
    assert (tmp_path / "alert" / "subject").read_text().startswith("MediCore backup FAILED on ")


def test_backup_without_a_directory_is_refused_loudly(env: dict[str, str]) -> None:
    unset = {k: v for k, v in env.items() if k != "MEDICORE_ALERT_COMMAND"}
    unset["MEDICORE_BACKUP_DIR"] = ""
    failed = run("backup.sh", env=unset)
    assert failed.returncode == 2
    assert "MEDICORE_BACKUP_DIR is not set" in failed.stderr


def test_health_check_alerts_when_nothing_answers(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    result = run(
        "health-check.sh",
        env={
            **env,
            "MEDICORE_URL": f"http://127.0.0.1:{port}",
            "MEDICORE_HC_DISK_PATH": str(tmp_path),
        },
    )
    assert result.returncode == 1
    text = (tmp_path / "alert" / "text").read_text()
    assert f"server not answering at http://127.0.0.1:{port}/health/ready" in text
    assert "MediCore health check FAILED" in (tmp_path / "alert" / "subject").read_text()


def test_the_default_alert_is_stderr_and_exit_code(env: dict[str, str], tmp_path: Path) -> None:
    plain = {k: v for k, v in env.items() if k != "MEDICORE_ALERT_COMMAND"}
    result = run(
        "health-check.sh",
        env={**plain, "MEDICORE_URL": "http://127.0.0.1:9", "MEDICORE_HC_TIMEOUT": "1"},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("ALERT: MediCore health check FAILED")
    assert not (tmp_path / "alert" / "text").exists()
