"""The searchable resource view of a chained AuditEvent, the same for both stores."""

from __future__ import annotations

import logging

import orjson

from fhir_server.search.extract import extract_index
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import VersionWrite

log = logging.getLogger("medicore.audit")


def audit_event_write(
    event_id: str, recorded: str, event_json: bytes, *, registry: SearchRegistry
) -> VersionWrite:
    """Version 1 of ``AuditEvent/<event_id>``, with meta and search index entries."""
    body = orjson.loads(event_json)
    last_updated = recorded.replace("Z", "+00:00")
    body["meta"] = {"versionId": "1", "lastUpdated": last_updated}
    return VersionWrite(
        resource_type="AuditEvent",
        id=event_id,
        version=1,
        expected_version=0,
        last_updated=last_updated,
        method="POST",
        body=orjson.dumps(body),
        index=extract_index(body, registry),
    )


def readable_write(
    position: int, event_id: str, recorded: str, event_json: bytes, *, registry: SearchRegistry
) -> VersionWrite | None:
    """``audit_event_write``, or None for a row that is not an AuditEvent we wrote (forged
    into the store): ``medicore audit verify`` reports it, and indexing goes on past it
    instead of stopping there for good."""
    try:
        return audit_event_write(event_id, recorded, event_json, registry=registry)
    except Exception:  # whatever such a row makes parsing or extraction raise
        log.warning("audit record %d is not a readable AuditEvent; not indexed", position)
        return None
