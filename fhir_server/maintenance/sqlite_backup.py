"""Online snapshot and restore of the embedded store through SQLite's backup API.

The snapshot is copied in one step inside one read transaction: in WAL mode the server's
writer keeps committing meanwhile, and the copy is exactly the database as of the
moment the read began (a stepped copy would restart on every concurrent commit).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from fhir_server.maintenance.archive import BackupError
from fhir_server.maintenance.manifest import Inventory


@contextlib.contextmanager
def _connect(path: Path, *, readonly: bool) -> Iterator[sqlite3.Connection]:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open the SQLite file {path.name}") from exc
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        yield conn
    finally:
        conn.close()


def snapshot(live: Path, dest: Path) -> None:
    """Copy the live database ``live`` into the new file ``dest``, consistently, online."""
    if not live.is_file():
        raise BackupError(f"the SQLite store file does not exist: {live}")
    try:
        with _connect(live, readonly=True) as src, _connect(dest, readonly=False) as dst:
            src.backup(dst)  # pages=-1: the whole database in one step
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
            problem = dst.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError("the SQLite online backup failed") from exc
    if problem != "ok":
        raise BackupError("the snapshot failed SQLite's integrity check")


def restore(snapshot_file: Path, target: Path) -> None:
    """Replace the whole content of ``target`` with ``snapshot_file`` (WAL-safe)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create {target.parent}: {exc.strerror}") from exc
    try:
        with _connect(snapshot_file, readonly=True) as src, _connect(target, readonly=False) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise BackupError("restoring into the SQLite store failed") from exc


def inventory(path: Path) -> Inventory:
    """Counts per type/kind and the audit chain head, read from an SQLite file."""
    if not path.exists():
        return Inventory()
    try:
        with _connect(path, readonly=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            inv = Inventory()
            if "resource" in tables:
                inv.resources = dict(
                    conn.execute(
                        "SELECT rtype, count(*) FROM resource WHERE deleted=0 GROUP BY rtype"
                    ).fetchall()
                )
            if "history" in tables:
                inv.versions = dict(
                    conn.execute("SELECT rtype, count(*) FROM history GROUP BY rtype").fetchall()
                )
            if "record" in tables:
                inv.records = dict(
                    conn.execute("SELECT kind, count(*) FROM record GROUP BY kind").fetchall()
                )
            if "audit" in tables:
                row = conn.execute(
                    "SELECT position, hash FROM audit ORDER BY position DESC LIMIT 1"
                ).fetchone()
                inv.audit_head = {"position": row[0], "hash": row[1]} if row else None
            return inv
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the SQLite file {path.name}") from exc
