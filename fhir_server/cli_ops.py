"""``medicore backup`` and ``medicore restore``: what ops/backup.sh and cron call.

Registered on the ``medicore`` command (``fhir_server.cli``), which is also how to run them
without an installed entry point: ``python -m fhir_server.cli backup ...``.

Exit codes: 0 done; 1 failed (message on stderr); 3 restore refused (store not empty,
no ``--force``); 4 checksum or archive damage; 5 restored data does not match the
manifest or the audit chain does not verify. Messages never carry resource content.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from fhir_server.maintenance import jobs
from fhir_server.maintenance.archive import COMPRESSIONS, BackupError, ChecksumMismatch
from fhir_server.maintenance.audit_check import verify_audit_chain
from fhir_server.settings import Settings
from fhir_server.storage.base import StoreError

EXIT_FAILED = 1
EXIT_REFUSED = 3
EXIT_CORRUPT = 4
EXIT_MISMATCH = 5


def register(commands: Any) -> None:
    """Add ``backup`` and ``restore`` to the ``medicore`` subcommands (argparse)."""
    backup = commands.add_parser("backup", help="online backup of the store into a directory")
    backup.add_argument("--to", required=True, type=Path, help="backup directory")
    backup.add_argument("--store", help="store URI (MEDICORE_STORE by default)")
    backup.add_argument(
        "--keep-days", type=int, default=30, help="delete archives older than this (30)"
    )
    backup.add_argument("--copy-to", type=Path, help="second location for a verified copy")
    backup.add_argument("--compress", choices=sorted(COMPRESSIONS), default="gzip")
    backup.set_defaults(handler=_backup)

    restore = commands.add_parser("restore", help="restore a backup archive into the store")
    restore.add_argument("file", type=Path, help="medicore-*.tar.gz or .tar.xz archive")
    restore.add_argument("--store", help="store URI (MEDICORE_STORE by default)")
    restore.add_argument(
        "--force", action="store_true", help="overwrite a store that already holds data"
    )
    restore.set_defaults(handler=_restore)


def _store(args: argparse.Namespace) -> tuple[str, str]:
    settings = Settings()
    return args.store or settings.store, settings.mongo_database


def _fail(message: str, code: int) -> int:
    print(f"medicore: {message}", file=sys.stderr)
    return code


def _backup(args: argparse.Namespace) -> int:
    uri, database = _store(args)
    try:
        result = asyncio.run(
            jobs.backup(
                uri,
                to=args.to,
                keep_days=args.keep_days,
                copy_dir=args.copy_to,
                compression=args.compress,
                mongo_database=database,
            )
        )
    except BackupError as exc:
        return _fail(f"backup failed: {exc}", EXIT_FAILED)
    except StoreError:
        return _fail("backup failed: the store is unreachable", EXIT_FAILED)
    summary = {
        "archive": str(result.archive),
        "copy": str(result.copy) if result.copy else None,
        "removed": [str(p) for p in result.removed],
        "created": result.manifest.created,
        "resources": result.manifest.inventory.resources,
        "versions": sum(result.manifest.inventory.versions.values()),
        "audit_head": result.manifest.inventory.audit_head,
    }
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return 0


def _restore(args: argparse.Namespace) -> int:
    uri, database = _store(args)
    try:
        result = asyncio.run(
            jobs.restore(
                args.file,
                uri,
                force=args.force,
                mongo_database=database,
                checks=[verify_audit_chain],
            )
        )
    except jobs.StoreNotEmpty as exc:
        return _fail(f"restore refused: {exc}", EXIT_REFUSED)
    except ChecksumMismatch as exc:
        return _fail(f"restore refused: {exc}", EXIT_CORRUPT)
    except jobs.RestoreCheckFailed as exc:
        return _fail(f"restore check failed: {exc}", EXIT_MISMATCH)
    except BackupError as exc:
        return _fail(f"restore failed: {exc}", EXIT_FAILED)
    except StoreError:
        return _fail("restore failed: the store is unreachable", EXIT_FAILED)
    for warning in result.warnings:
        print(f"medicore: warning: {warning}", file=sys.stderr)
    summary = {
        "restored_from": str(args.file),
        "created": result.manifest.created,
        "resources": result.restored.resources,
        "versions": sum(result.restored.versions.values()),
        "audit_head": result.restored.audit_head,
        "counts_match": not result.warnings,
    }
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return 0
