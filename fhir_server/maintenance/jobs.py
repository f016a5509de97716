"""``backup`` and ``restore`` end to end: snapshot, manifest, archive, rotation, checks.

Post-restore checks beyond the counts (e.g. ``medicore audit verify`` once audit lands)
plug in through :func:`register_restore_check`: each gets the store URI and the
manifest, returns ``None`` when satisfied or a PHI-free problem description.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fhir_server.maintenance import mongo_backup, sqlite_backup
from fhir_server.maintenance.archive import (
    BackupError,
    archive_name,
    unpack,
    verify_checksum,
    write_archive,
)
from fhir_server.maintenance.manifest import Inventory, Manifest, sha256_file
from fhir_server.maintenance.rotation import check_keep_days, copy_to, rotate
from fhir_server.storage import store_from_uri

RestoreCheck = Callable[[str, Manifest], Awaitable[str | None]]
_RESTORE_CHECKS: list[RestoreCheck] = []


class StoreNotEmpty(BackupError):
    """Restore refused: the target store holds data and ``--force`` was not given."""


class RestoreCheckFailed(BackupError):
    """The restored store does not match the manifest."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the restored store does not match the backup: " + "; ".join(problems))
        self.problems = problems


def register_restore_check(check: RestoreCheck) -> None:
    """Run ``check(store_uri, manifest)`` after every restore (idempotent per callable)."""
    if check not in _RESTORE_CHECKS:
        _RESTORE_CHECKS.append(check)


@dataclass(slots=True)
class BackupResult:
    archive: Path
    manifest: Manifest
    copy: Path | None = None
    removed: list[Path] = field(default_factory=list)


@dataclass(slots=True)
class RestoreResult:
    manifest: Manifest
    restored: Inventory
    warnings: list[str] = field(default_factory=list)


def store_kind(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        return "sqlite"
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        return "mongodb"
    raise BackupError("the store URI must start with sqlite:/// or mongodb://")


def _sqlite_path(uri: str) -> Path:
    from fhir_server.storage.sqlite import sqlite_path_from_uri

    return sqlite_path_from_uri(uri)


async def inventory_of(uri: str, *, mongo_database: str = "medicore") -> Inventory:
    """What the store at ``uri`` holds now."""
    if store_kind(uri) == "sqlite":
        return await asyncio.to_thread(sqlite_backup.inventory, _sqlite_path(uri))
    store = store_from_uri(uri, mongo_database=mongo_database)
    await store.open()
    try:
        return await mongo_backup.inventory(store)
    finally:
        await store.close()


async def backup(
    uri: str,
    *,
    to: Path,
    keep_days: int = 30,
    copy_dir: Path | None = None,
    compression: str = "gzip",
    mongo_database: str = "medicore",
    now: datetime | None = None,
) -> BackupResult:
    """Snapshot the store online into ``to``; rotate; copy to ``copy_dir`` if given."""
    kind = store_kind(uri)
    check_keep_days(keep_days)  # before the snapshot, not after the archive is written
    when = now or datetime.now(UTC)
    with _scratch(to, prefix=".medicore-backup-") as scratch:
        work = Path(scratch)
        if kind == "sqlite":
            payload = work / "medicore.db"
            await asyncio.to_thread(sqlite_backup.snapshot, _sqlite_path(uri), payload)
            inv, exact = await asyncio.to_thread(sqlite_backup.inventory, payload), True
        else:
            payload = work / "mongodump.archive"
            await asyncio.to_thread(mongo_backup.dump, uri, payload)
            # Taken right after the dump: concurrent writes may move these a little.
            inv, exact = await inventory_of(uri, mongo_database=mongo_database), False
        manifest = Manifest(
            created=when.astimezone(UTC).isoformat(timespec="seconds"),
            store_kind=kind,
            payload=payload.name,
            payload_sha256=await asyncio.to_thread(sha256_file, payload),
            payload_bytes=payload.stat().st_size,
            inventory=inv,
            counts_exact=exact,
        )
        archive = await asyncio.to_thread(
            write_archive,
            to,
            name=archive_name(kind, when, compression),
            manifest=manifest,
            payload=payload,
            compression=compression,
        )
    result = BackupResult(archive=archive, manifest=manifest)
    if copy_dir is not None:
        result.copy = await asyncio.to_thread(copy_to, archive, copy_dir)
        await asyncio.to_thread(rotate, copy_dir, keep_days=keep_days, now=when)
    result.removed = await asyncio.to_thread(rotate, to, keep_days=keep_days, now=when)
    return result


async def restore(
    archive: Path,
    uri: str,
    *,
    force: bool = False,
    mongo_database: str = "medicore",
    checks: Sequence[RestoreCheck] = (),
) -> RestoreResult:
    """Verify, refuse a non-empty store unless ``force``, restore, then prove the counts.

    ``checks`` run after the registered ones, for this restore only.
    """
    await asyncio.to_thread(verify_checksum, archive)
    kind = store_kind(uri)
    current = await inventory_of(uri, mongo_database=mongo_database)
    if not current.empty and not force:
        raise StoreNotEmpty(
            "the target store is not empty; stop the server and pass --force to overwrite it"
        )
    with _scratch(archive.parent, prefix=".medicore-restore-") as scratch:
        manifest, payload = await asyncio.to_thread(unpack, archive, Path(scratch))
        if manifest.store_kind != kind:
            raise BackupError(f"this is a {manifest.store_kind} backup; the target is {kind}")
        if kind == "sqlite":
            await asyncio.to_thread(sqlite_backup.restore, payload, _sqlite_path(uri))
        else:
            await asyncio.to_thread(mongo_backup.restore, uri, payload, drop=force)
    restored = await inventory_of(uri, mongo_database=mongo_database)
    problems = manifest.inventory.differences(restored)
    result = RestoreResult(manifest=manifest, restored=restored)
    if problems and manifest.counts_exact:
        raise RestoreCheckFailed(problems)
    result.warnings.extend(problems)
    hook_problems = [
        p for check in (*_RESTORE_CHECKS, *checks) if (p := await check(uri, manifest))
    ]
    if hook_problems:
        raise RestoreCheckFailed(hook_problems)
    return result


def _scratch(near: Path, *, prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A scratch directory next to the data (not in a small /tmp); ``BackupError`` if none."""
    try:
        near.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=prefix, dir=near)
    except OSError as exc:
        raise BackupError(f"cannot write in {near}: {exc.strerror}") from exc
