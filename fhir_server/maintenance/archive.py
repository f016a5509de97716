"""Backup archives: ``manifest.json`` + one payload in a tar (gzip or xz), with a checksum.

Next to every archive ``X.tar.gz`` lies ``X.tar.gz.sha256`` in ``sha256sum`` format, so
a corrupt or truncated archive is refused before anything is unpacked (and an operator
can check it with ``sha256sum -c``). The manifest inside also carries the payload's
own checksum, checked again after unpacking.
"""

from __future__ import annotations

import os
import re
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from fhir_server.maintenance.manifest import Manifest, sha256_file

COMPRESSIONS = {"gzip": ("gz", ".tar.gz"), "xz": ("xz", ".tar.xz")}
NAME_RE = re.compile(r"^medicore-(?P<kind>[a-z]+)-(?P<ts>\d{8}T\d{6})Z(?:-\d+)?\.tar\.(?:gz|xz)$")
MANIFEST_NAME = "manifest.json"


class BackupError(Exception):
    """A backup or restore step failed; the message is safe to print (no PHI)."""


class ChecksumMismatch(BackupError):
    """The archive or its payload is not what was written."""


def archive_name(kind: str, when: datetime, compression: str) -> str:
    return f"medicore-{kind}-{when.astimezone(UTC):%Y%m%dT%H%M%S}Z{COMPRESSIONS[compression][1]}"


def archive_time(path: Path) -> datetime | None:
    """The snapshot time encoded in an archive's name, or None for foreign files."""
    match = NAME_RE.match(path.name)
    if match is None:
        return None
    return datetime.strptime(match["ts"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def checksum_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".sha256")


def write_archive(
    target_dir: Path, *, name: str, manifest: Manifest, payload: Path, compression: str
) -> Path:
    """Write the archive and its checksum file atomically; returns the archive path."""
    mode = COMPRESSIONS[compression][0]
    final = _free_name(target_dir / name)
    partial = final.with_name(final.name + ".partial")
    manifest_file = payload.with_name(MANIFEST_NAME)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        manifest_file.write_bytes(manifest.to_json())
        with tarfile.open(partial, f"w:{mode}") as tar:  # type: ignore[call-overload]
            tar.add(manifest_file, arcname=MANIFEST_NAME)
            tar.add(payload, arcname=manifest.payload)
        _fsync(partial)
        digest = sha256_file(partial)
        sidecar = checksum_path(final)
        sidecar.write_text(f"{digest}  {final.name}\n")
        os.replace(partial, final)
        _fsync_dir(target_dir)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot write the archive in {target_dir}: {exc.strerror}") from exc
    return final


def verify_checksum(archive: Path) -> str:
    """Raise :class:`ChecksumMismatch` unless the archive matches its ``.sha256`` file."""
    sidecar = checksum_path(archive)
    if not archive.is_file():
        raise BackupError(f"no such archive: {archive}")
    if not sidecar.is_file():
        raise ChecksumMismatch(f"checksum file missing: {sidecar.name}")
    try:
        words = sidecar.read_bytes().split()
        actual = sha256_file(archive)
    except OSError as exc:
        raise BackupError(f"cannot read {archive.name}: {exc.strerror}") from exc
    if not words or words[0].decode("ascii", "replace") != actual:
        raise ChecksumMismatch(f"checksum mismatch for {archive.name}: the archive is corrupt")
    return actual


def unpack(archive: Path, into: Path) -> tuple[Manifest, Path]:
    """Read the manifest, extract the payload into ``into`` and check the payload digest."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            manifest_member = tar.extractfile(MANIFEST_NAME)
            if manifest_member is None:
                raise BackupError("the archive has no manifest")
            manifest = Manifest.from_json(manifest_member.read())
            member = tar.getmember(manifest.payload)
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise BackupError("the archive payload is not a plain file")
            tar.extract(member, into, filter="data")
    except (tarfile.TarError, KeyError, EOFError, ValueError, OSError) as exc:
        raise ChecksumMismatch(f"cannot read {archive.name}: the archive is damaged") from exc
    payload = into / manifest.payload
    if sha256_file(payload) != manifest.payload_sha256:
        raise ChecksumMismatch("the payload does not match the manifest checksum")
    return manifest, payload


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        stem = path.name.split(".tar.")[0]
        candidate = path.with_name(f"{stem}-{n}.tar.{path.name.split('.tar.')[1]}")
    return candidate


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
