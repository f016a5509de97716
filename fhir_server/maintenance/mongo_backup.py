"""MongoDB backup and restore through ``mongodump --oplog`` / ``mongorestore --oplogReplay``.

``--oplog`` makes the dump a point-in-time snapshot of a replica set while writes go
on: the oplog entries written during the dump are captured and replayed on restore.
The connection string (it may carry a password) is passed in a 0600 ``--config`` file,
never on the command line where ``ps`` would show it.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fhir_server.maintenance.archive import BackupError
from fhir_server.maintenance.manifest import Inventory

DUMP_TIMEOUT_S = 6 * 3600


@contextmanager
def _uri_config(uri: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="medicore-mongo-", suffix=".yaml")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"uri: '{uri.replace(chr(39), chr(39) * 2)}'\n")
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (MongoDB Database Tools are needed)")
    return found


def _run(args: list[str], *, what: str) -> None:
    try:
        done = subprocess.run(args, capture_output=True, timeout=DUMP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{what} could not run") from exc
    if done.returncode != 0:
        # The tools' stderr names hosts and collections, not documents; keep the tail.
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BackupError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def dump(uri: str, dest: Path) -> None:
    """A whole-deployment dump with the oplog into the archive file ``dest``."""
    with _uri_config(uri) as config:
        _run(
            [_tool("mongodump"), f"--config={config}", "--oplog", f"--archive={dest}"],
            what="mongodump",
        )


def restore(uri: str, archive: Path, *, drop: bool) -> None:
    """Restore ``archive`` and replay its oplog; ``drop`` replaces existing collections."""
    args = [_tool("mongorestore"), "--oplogReplay", f"--archive={archive}"]
    if drop:
        args.append("--drop")
    with _uri_config(uri) as config:
        _run([args[0], f"--config={config}", *args[1:]], what="mongorestore")


async def inventory(store: Any) -> Inventory:
    """Counts per type/kind and the audit head of an open ``MongoStore``."""
    inv = Inventory(resources=await store.counts())
    inv.versions = await _group(store.db.history, "type")
    inv.records = await _group(store.db.records, "kind")
    head_fn = getattr(store, "audit_head", None)
    if head_fn is not None:
        head = await head_fn()
        if head.position:
            inv.audit_head = {"position": head.position, "hash": head.hash}
    return inv


async def _group(collection: Any, field_name: str) -> dict[str, int]:
    cursor = collection.aggregate([{"$group": {"_id": f"${field_name}", "n": {"$sum": 1}}}])
    if inspect.isawaitable(cursor):  # pymongo's async driver returns a coroutine
        cursor = await cursor
    rows = await cursor.to_list(None)
    return {str(row["_id"]): int(row["n"]) for row in rows}
