"""Backup safety: refusals, damaged archives, rotation, second copy, compression, CLI."""

from __future__ import annotations

import asyncio
import io
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhir_server import cli, cli_ops
from fhir_server.maintenance import (
    ChecksumMismatch,
    RestoreCheckFailed,
    StoreNotEmpty,
    backup,
    register_restore_check,
    restore,
)
from fhir_server.maintenance import jobs as maintenance_jobs
from fhir_server.maintenance.archive import checksum_path
from fhir_server.maintenance.manifest import sha256_file
from fhir_server.maintenance.rotation import rotate
from fhir_server.maintenance.sqlite_backup import inventory
from fhir_server.storage.base import WriteBatch
from fhir_server.storage.sqlite import SqliteStore
from tests.integration.ops import drill_data


async def _store_with(path: Path, patients: int, *, audit_key: bytes = b"") -> None:
    store = SqliteStore(path, audit_key=audit_key)
    await store.open()
    await drill_data.load(store, patients=patients)
    await store.close()


@pytest.fixture
async def live(tmp_path: Path) -> Path:
    path = tmp_path / "live.db"
    await _store_with(path, 20)
    return path


async def test_restore_refuses_a_non_empty_store_without_force(live: Path, tmp_path: Path) -> None:
    result = await backup(f"sqlite:///{live}", to=tmp_path / "b")
    store = SqliteStore(live)
    await store.open()
    await store.commit(WriteBatch(writes=[drill_data.version_write("Patient", "later", 1)]))
    await store.close()
    after_change = drill_data.history_rows(live)
    with pytest.raises(StoreNotEmpty):
        await restore(result.archive, f"sqlite:///{live}")
    assert drill_data.history_rows(live) == after_change  # untouched
    await restore(result.archive, f"sqlite:///{live}", force=True)
    assert ("Patient", "later", 1) not in drill_data.history_rows(live)
    assert inventory(live) == result.manifest.inventory


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-checksum-file"])
async def test_restore_refuses_a_damaged_archive(live: Path, tmp_path: Path, damage: str) -> None:
    result = await backup(f"sqlite:///{live}", to=tmp_path / "b")
    data = bytearray(result.archive.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        result.archive.write_bytes(bytes(data))
    elif damage == "truncate":
        result.archive.write_bytes(bytes(data[: len(data) // 2]))
    else:
        checksum_path(result.archive).unlink()
    target = tmp_path / "empty.db"
    with pytest.raises(ChecksumMismatch):
        await restore(result.archive, f"sqlite:///{target}")
    assert not target.exists()


async def test_restore_refuses_a_payload_that_does_not_match_its_manifest(
    live: Path, tmp_path: Path
) -> None:
    result = await backup(f"sqlite:///{live}", to=tmp_path / "b")
    # Rebuild the archive with another database but the original manifest, and a fresh
    # outer checksum: only the manifest's payload checksum can catch it.
    other = tmp_path / "other.db"
    await _store_with(other, 3)
    forged = tmp_path / "forged" / result.archive.name
    forged.parent.mkdir()
    with tarfile.open(result.archive, "r:gz") as src, tarfile.open(forged, "w:gz") as dst:
        manifest = src.extractfile("manifest.json")
        assert manifest is not None
        raw = manifest.read()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(raw)
        dst.addfile(info, io.BytesIO(raw))
        dst.add(other, arcname="medicore.db")
    checksum_path(forged).write_text(f"{sha256_file(forged)}  {forged.name}\n")
    with pytest.raises(ChecksumMismatch, match="payload"):
        await restore(forged, f"sqlite:///{tmp_path / 'target.db'}")


async def test_a_failing_post_restore_check_fails_the_restore(live: Path, tmp_path: Path) -> None:
    result = await backup(f"sqlite:///{live}", to=tmp_path / "b")

    async def chain_broken(uri: str, manifest: object) -> str | None:
        return "audit chain broken at position 17"

    register_restore_check(chain_broken)
    try:
        with pytest.raises(RestoreCheckFailed, match="position 17"):
            await restore(result.archive, f"sqlite:///{tmp_path / 'fresh.db'}")
    finally:
        maintenance_jobs._RESTORE_CHECKS.remove(chain_broken)


async def test_xz_archives_round_trip(live: Path, tmp_path: Path) -> None:
    result = await backup(f"sqlite:///{live}", to=tmp_path / "b", compression="xz")
    assert result.archive.name.endswith(".tar.xz")
    target = tmp_path / "fromxz.db"
    await restore(result.archive, f"sqlite:///{target}")
    assert drill_data.history_rows(target) == drill_data.history_rows(live)


async def test_rotation_keeps_the_window_and_foreign_files(live: Path, tmp_path: Path) -> None:
    out, offsite = tmp_path / "daily", tmp_path / "offsite"
    today = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    ages = (45, 31, 30, 29, 1)
    for days in ages:
        await backup(
            f"sqlite:///{live}", to=out, copy_dir=offsite, now=today - timedelta(days=days)
        )
    (out / "notes.txt").write_text("keep me")
    (out / "medicore-sqlite-garbage.tar.gz").write_text("not ours by name")
    result = await backup(f"sqlite:///{live}", to=out, copy_dir=offsite, keep_days=30, now=today)
    kept = sorted(p.name for p in out.glob("medicore-sqlite-2*.tar.gz"))
    expected = sorted(
        f"medicore-sqlite-{today - timedelta(days=d):%Y%m%dT%H%M%S}Z.tar.gz" for d in (30, 29, 1, 0)
    )
    assert kept == expected
    assert sorted(p.name for p in offsite.glob("*.tar.gz")) == expected
    # The 45-day one already went when the 1-day-old backup ran; today's run drops 31.
    thirty_one = today - timedelta(days=31)
    assert [p.name for p in result.removed] == [
        f"medicore-sqlite-{thirty_one:%Y%m%dT%H%M%S}Z.tar.gz"
    ]
    assert (out / "notes.txt").exists() and (out / "medicore-sqlite-garbage.tar.gz").exists()
    for archive in out.glob("medicore-sqlite-2*.tar.gz"):
        assert checksum_path(archive).exists()
    assert len(list(out.glob("*.sha256"))) == len(expected)


def test_rotation_never_deletes_the_last_archive(tmp_path: Path) -> None:
    old = tmp_path / "medicore-sqlite-20200101T000000Z.tar.gz"
    old.write_bytes(b"x")
    assert rotate(tmp_path, keep_days=30) == []
    assert old.exists()


def test_cli_exit_codes_and_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    live = tmp_path / "cli.db"
    asyncio.run(_store_with(live, 5, audit_key=b"cli-test-key"))
    monkeypatch.setenv("MEDICORE_DATA_DIR", str(tmp_path / "data"))  # no key file there
    monkeypatch.setenv("MEDICORE_AUDIT_KEY", "cli-test-key")
    store = f"sqlite:///{live}"
    assert cli.main(["backup", "--to", str(tmp_path / "b"), "--store", store]) == 0
    archive = next((tmp_path / "b").glob("*.tar.gz"))
    assert str(archive) in capsys.readouterr().out

    assert cli.main(["restore", str(archive), "--store", store]) == cli_ops.EXIT_REFUSED
    assert "--force" in capsys.readouterr().err

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli.main(["restore", str(archive), "--store", fresh]) == 0
    assert '"counts_match": true' in capsys.readouterr().out

    # The chain is verified with the server's key, which is never in the backup.
    monkeypatch.setenv("MEDICORE_AUDIT_KEY", "another-key")
    wrong = f"sqlite:///{tmp_path / 'wrong.db'}"
    assert cli.main(["restore", str(archive), "--store", wrong]) == cli_ops.EXIT_MISMATCH
    assert "position 1" in capsys.readouterr().err
    monkeypatch.delenv("MEDICORE_AUDIT_KEY")
    keyless = f"sqlite:///{tmp_path / 'keyless.db'}"
    assert cli.main(["restore", str(archive), "--store", keyless]) == cli_ops.EXIT_MISMATCH
    assert "no audit HMAC key" in capsys.readouterr().err

    archive.write_bytes(archive.read_bytes()[:-10])
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert cli.main(["restore", str(archive), "--store", other]) == cli_ops.EXIT_CORRUPT
    assert "corrupt" in capsys.readouterr().err

    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    code = cli.main(["backup", "--to", str(tmp_path / "b2"), "--store", missing])
    assert code == cli_ops.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("medicore: backup failed:") and "does not exist" in err
    assert not list((tmp_path / "b2").glob("*.partial"))


def _tar_with_manifest(path: Path, manifest: bytes) -> Path:
    """A gzip tar holding only ``manifest.json``, with a matching checksum file."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    checksum_path(path).write_text(f"{sha256_file(path)}  {path.name}\n")
    return path


@pytest.mark.parametrize(
    "manifest",
    [
        b'{"format_version": 1, "inventory": {"unknown": 1}}',
        b'{"format_version": 1, "inventory": []}',
        b'{"format_version": 1, "created": "x", "store_kind": "sqlite", "payload": 5,'
        b' "payload_sha256": "0", "payload_bytes": 1, "inventory": {}, "counts_exact": true}',
        b'{"format_version": 1, "created": "x", "store_kind": "sqlite", "payload": "p",'
        b' "payload_sha256": "0", "payload_bytes": 1, "inventory": {"versions": "x"},'
        b' "counts_exact": true}',
    ],
)
def test_restore_of_a_malformed_manifest_is_damage_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: bytes
) -> None:
    archive = _tar_with_manifest(tmp_path / "medicore-sqlite-20260101T000000Z.tar.gz", manifest)
    store = f"sqlite:///{tmp_path / 'target.db'}"
    assert cli.main(["restore", str(archive), "--store", store]) == cli_ops.EXIT_CORRUPT
    assert "damaged" in capsys.readouterr().err
    assert not (tmp_path / "target.db").exists()


def test_restore_of_garbage_files_gives_a_message_and_an_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'target.db'}"
    missing = tmp_path / "nothing-here.tar.gz"
    assert cli.main(["restore", str(missing), "--store", store]) == cli_ops.EXIT_FAILED
    assert "no such archive" in capsys.readouterr().err

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive at all")
    checksum_path(garbage).write_bytes(b"\xff\xfe binary \x00")  # not even text
    assert cli.main(["restore", str(garbage), "--store", store]) == cli_ops.EXIT_CORRUPT
    assert "checksum mismatch" in capsys.readouterr().err

    checksum_path(garbage).write_text(f"{sha256_file(garbage)}  garbage.tar.gz\n")
    assert cli.main(["restore", str(garbage), "--store", store]) == cli_ops.EXIT_CORRUPT
    assert "damaged" in capsys.readouterr().err
    assert not (tmp_path / "target.db").exists()


def test_backup_to_an_unusable_place_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.db"
    asyncio.run(_store_with(live, 1))
    store = f"sqlite:///{live}"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for target in (a_file, a_file / "below"):
        code = cli.main(["backup", "--to", str(target), "--store", store])
        assert code == cli_ops.EXIT_FAILED
        err = capsys.readouterr().err
        assert err.startswith("medicore: backup failed: cannot write in") and "Traceback" not in err

    # A bad retention is refused before anything is written.
    out = tmp_path / "out"
    code = cli.main(["backup", "--to", str(out), "--store", store, "--keep-days", "0"])
    assert code == cli_ops.EXIT_FAILED
    assert "--keep-days" in capsys.readouterr().err
    assert not list(out.glob("medicore-*"))


def test_restore_into_an_unusable_place_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.db"
    asyncio.run(_store_with(live, 1))
    assert cli.main(["backup", "--to", str(tmp_path / "b"), "--store", f"sqlite:///{live}"]) == 0
    archive = next((tmp_path / "b").glob("*.tar.gz"))
    capsys.readouterr()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    target = f"sqlite:///{a_file / 'medicore.db'}"
    assert cli.main(["restore", str(archive), "--store", target]) == cli_ops.EXIT_FAILED
    assert capsys.readouterr().err.startswith("medicore: restore failed:")
