"""The audit chain's secret and the background task that makes AuditEvents searchable."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from fhir_server.search.registry import SearchRegistry
from fhir_server.settings import Settings
from fhir_server.storage.base import Store, StoreError

log = logging.getLogger("medicore.audit")


def audit_key_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "keys" / "audit-hmac.key"


def existing_audit_key(settings: Settings) -> bytes | None:
    """``MEDICORE_AUDIT_KEY``, else the key file when there is one (nothing is created)."""
    if settings.audit_key:
        return settings.audit_key.encode()
    path = audit_key_path(settings)
    return path.read_bytes().strip() if path.is_file() else None


class AuditKeyMissing(RuntimeError):
    """A command that is not the server found no audit key: it never makes one.

    A new key would seal nothing and verify nothing: every record of the real chain
    would read as tampered ("BROKEN at position 1") when the key is only elsewhere.
    """

    def __init__(self, settings: Settings) -> None:
        path = audit_key_path(settings).absolute()
        super().__init__(
            f"no audit HMAC key: MEDICORE_AUDIT_KEY is not set and {path} does not exist "
            f"(the key file is <MEDICORE_DATA_DIR>/keys/audit-hmac.key; MEDICORE_DATA_DIR is "
            f"{settings.data_dir!r}, relative to the working directory). Run this where the "
            "server runs, or set MEDICORE_DATA_DIR or MEDICORE_AUDIT_KEY to the server's."
        )


def require_audit_key(settings: Settings) -> bytes:
    """The existing key, or `AuditKeyMissing`: for every command but the server's start."""
    key = existing_audit_key(settings)
    if key is None:
        raise AuditKeyMissing(settings)
    return key


def load_audit_key(settings: Settings) -> bytes:
    """``MEDICORE_AUDIT_KEY``, else a key file created once beside the data (mode 0600).

    Only starting the server creates the key (`require_audit_key` everywhere else).

    Keep it out of the database and its backups: whoever holds it can re-seal a chain.
    Several hosts sharing one MongoDB must share the key (set MEDICORE_AUDIT_KEY).
    """
    existing = existing_audit_key(settings)
    if existing is not None:
        return existing
    path = audit_key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def check_audit_allowed(settings: Settings) -> None:
    """Test-only switches never run in production."""
    if settings.is_production and not settings.audit_enabled:
        raise SystemExit("audit recording cannot be disabled when MEDICORE_ENV=production")
    if settings.is_production and not settings.auth_required:
        raise SystemExit("authentication cannot be disabled when MEDICORE_ENV=production")
    if settings.is_production and settings.sqlite_max_pages is not None:
        raise SystemExit("MEDICORE_SQLITE_MAX_PAGES is test-only; refused in production")


async def index_audit_forever(store: Store, *, registry: SearchRegistry, interval: float) -> None:
    """Index newly recorded AuditEvents every ``interval`` seconds until cancelled.

    This is the ``inline`` mode (``medicore serve`` runs the indexer process instead).
    Each chunk is followed by a pause as long as it took, so indexing never takes more
    than half of the server's event loop (and, on MongoDB, of the database's writes):
    requests keep their latency under load, and a backlog built in a burst is caught up
    when it passes (or when an auditor searches).
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            while True:
                started = loop.time()
                if await store.index_audit(registry=registry) == 0:
                    break
                await asyncio.sleep(loop.time() - started)
        except StoreError:
            continue
        except Exception as exc:  # keep indexing later; searches still catch up themselves
            log.warning("audit indexing failed (%s); retrying later", type(exc).__name__)
