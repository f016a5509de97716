"""Backup and restore of either store: online snapshots, manifests, rotation, checks."""

from __future__ import annotations

from fhir_server.maintenance.archive import BackupError, ChecksumMismatch
from fhir_server.maintenance.jobs import (
    BackupResult,
    RestoreCheckFailed,
    RestoreResult,
    StoreNotEmpty,
    backup,
    inventory_of,
    register_restore_check,
    restore,
)
from fhir_server.maintenance.manifest import Inventory, Manifest

__all__ = [
    "BackupError",
    "BackupResult",
    "ChecksumMismatch",
    "Inventory",
    "Manifest",
    "RestoreCheckFailed",
    "RestoreResult",
    "StoreNotEmpty",
    "backup",
    "inventory_of",
    "register_restore_check",
    "restore",
]
