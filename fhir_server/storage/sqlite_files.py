"""Connections to the SQLite files and keeping their WAL bounded (store and AuditEvent index)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from types import TracebackType

BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_WAIT_MS = 200
WAL_LIMIT = 64 * 1024 * 1024


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit mode (transactions are explicit), usable from the engine's threads."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def truncate_wal(conn: sqlite3.Connection, path: Path, *, limit: int = WAL_LIMIT) -> bool | None:
    """Reset ``path``'s WAL once it is past ``limit``; True if readers of older snapshots
    kept it from being reset, None when it was not needed.

    Automatic (passive) checkpoints never reset a WAL while some reader or other process
    always holds a snapshot, and the file then grows without bound. TRUNCATE waits for
    readers of older snapshots (new readers go on) while writes wait, hence a short timeout.
    """
    try:
        size = os.stat(f"{path}-wal").st_size
    except OSError:
        return None
    if size <= limit:
        return None
    conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
    try:
        row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(row and row[0])
    except sqlite3.Error:
        return True
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


class WriterLock:
    """The store's writers in every process take turns on this lock file before SQLite's.

    SQLite's own lock, when busy, is retried by sleeping (1, 2, 5, 10 ms ... 100 ms): with
    several workers on one file, every write would wait out those sleeps while the lock
    sits free. A blocking ``flock`` wakes the next writer the moment it is released.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".writer-lock")
        self._fd: int | None = None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
