"""Keep daily archives for N days, and a verified copy in a second location."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fhir_server.maintenance.archive import (
    BackupError,
    archive_time,
    checksum_path,
    verify_checksum,
)


def check_keep_days(keep_days: int) -> None:
    """Refuse a retention that would delete every archive but the newest at once."""
    if keep_days < 1:
        raise BackupError("--keep-days must be at least 1")


def rotate(directory: Path, *, keep_days: int, now: datetime | None = None) -> list[Path]:
    """Delete MediCore archives (and their checksum files) older than ``keep_days``.

    Age comes from the snapshot time in the file name, not the file's mtime (a copy or
    a restore from tape changes mtimes). Foreign files are never touched, and the newest
    archive is always kept, however old, so a stopped backup job never empties the folder.
    """
    check_keep_days(keep_days)
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=keep_days)
    dated = sorted(
        (
            (when, path)
            for path in directory.glob("medicore-*.tar.*")
            if (when := archive_time(path))
        ),
        reverse=True,
    )
    removed: list[Path] = []
    for when, path in dated[1:]:
        if when < cutoff:
            path.unlink(missing_ok=True)
            checksum_path(path).unlink(missing_ok=True)
            removed.append(path)
    return removed


def copy_to(archive: Path, directory: Path) -> Path:
    """Copy ``archive`` and its checksum file to ``directory`` and verify the copy."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / archive.name
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(archive, partial)
        shutil.copyfile(checksum_path(archive), checksum_path(target))
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except OSError as exc:
        raise BackupError(f"cannot copy the archive to {directory}: {exc.strerror}") from exc
    verify_checksum(target)
    return target
