"""MongoDB backup: the tool invocations (no mongodump here: a recording stand-in on PATH)
and the inventory (on the tests' real MongoDB server, through the real adapter)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fhir_server.maintenance import BackupError, mongo_backup
from fhir_server.storage.base import RecordWrite, VersionWrite, WriteBatch
from tests.conftest import make_store

URI = "mongodb://backup:s3cr3t-pw@db1,db2,db3/?replicaSet=rs0&authSource=admin"

RECORDER = """#!/bin/sh
# Records its arguments and the --config file it was given, like the real tool would read it.
echo "$0 $*" > "$TOOL_LOG"
for arg in "$@"; do
  case "$arg" in
    --config=*) cfg="${arg#--config=}"; cp "$cfg" "$TOOL_LOG.config";
                stat -c %a "$cfg" > "$TOOL_LOG.mode" ;;
    --archive=*) echo "dump-bytes" > "${arg#--archive=}" ;;
  esac
done
exit "${TOOL_EXIT:-0}"
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mongodump", "mongorestore"):
        tool = bin_dir / name
        tool.write_text(RECORDER)
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "tool.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TOOL_LOG", str(log))
    return log


def test_dump_uses_the_oplog_and_keeps_the_password_off_the_command_line(
    tools: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "mongodump.archive"
    mongo_backup.dump(URI, dest)
    argv = tools.read_text()
    assert "mongodump" in argv and "--oplog" in argv and f"--archive={dest}" in argv
    assert "s3cr3t-pw" not in argv
    assert URI in Path(f"{tools}.config").read_text()
    assert Path(f"{tools}.mode").read_text().strip() == "600"
    assert dest.read_text() == "dump-bytes\n"
    assert not list(Path(f"{tools}.config").parent.glob("medicore-mongo-*.yaml"))


def test_restore_replays_the_oplog_and_drops_only_when_forced(tools: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.archive"
    archive.write_text("x")
    mongo_backup.restore(URI, archive, drop=False)
    argv = tools.read_text()
    assert "mongorestore" in argv and "--oplogReplay" in argv and "--drop" not in argv
    mongo_backup.restore(URI, archive, drop=True)
    assert "--drop" in tools.read_text()


def test_a_failing_tool_gives_a_clear_error(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOL_EXIT", "2")
    with pytest.raises(BackupError, match=r"mongodump failed \(exit 2\)"):
        mongo_backup.dump(URI, tmp_path / "d.archive")


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupError, match="mongodump is not installed"):
        mongo_backup.dump(URI, tmp_path / "d.archive")


@pytest.mark.mongo
async def test_inventory_counts_types_versions_records_and_audit(tmp_path: Path) -> None:
    store, drop = await make_store("mongo", tmp_path)
    await store.open()
    try:
        body = b'{"resourceType":"Patient","id":"a"}'
        writes = [
            VersionWrite("Patient", "a", 1, 0, "2026-01-01T00:00:00+00:00", "POST", body, None),
            VersionWrite("Patient", "a", 2, 1, "2026-01-02T00:00:00+00:00", "PUT", body, None),
            VersionWrite("Patient", "b", 1, 0, "2026-01-02T00:00:00+00:00", "POST", body, None),
        ]
        await store.commit(WriteBatch(writes=writes[:1]))
        await store.commit(
            WriteBatch(
                writes=writes[1:], records=[RecordWrite("hl7_inbox", "m1", {"status": "failed"})]
            )
        )
        inv = await mongo_backup.inventory(store)
        assert inv.resources == {"Patient": 2}
        assert inv.versions == {"Patient": 3}
        assert inv.records == {"hl7_inbox": 1}
        assert not inv.empty
    finally:
        if drop is not None:
            await store.client.drop_database(drop)  # type: ignore[attr-defined]
        await store.close()
