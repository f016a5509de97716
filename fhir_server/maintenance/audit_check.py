"""Post-restore check: the restored audit chain verifies with the server's HMAC key.

The key is deliberately not in the backup (whoever holds it can re-seal a chain); it
comes from ``MEDICORE_AUDIT_KEY`` or the key file under ``MEDICORE_DATA_DIR``, which
must be restored separately. A missing key is reported, never silently created.
"""

from __future__ import annotations

from audit.chain import verify
from fhir_server.audit_setup import AuditKeyMissing, existing_audit_key
from fhir_server.maintenance.manifest import Manifest
from fhir_server.settings import Settings
from fhir_server.storage import store_from_uri


async def verify_audit_chain(uri: str, manifest: Manifest) -> str | None:
    """``None`` when the restored chain verifies (or the backup had none), else the problem."""
    if not manifest.inventory.audit_head:
        return None
    settings = Settings(store=uri)
    key = existing_audit_key(settings)
    if key is None:
        return f"{AuditKeyMissing(settings)} The chain was not verified."
    store = store_from_uri(uri, mongo_database=settings.mongo_database, audit_key=key)
    await store.open()
    try:
        records = [record async for record in store.iter_audit()]  # type: ignore[attr-defined]
    finally:
        await store.close()
    report = verify(records, key=key)
    return None if report.ok else report.describe()
