"""The searchable resource view of a chained AuditEvent, the same for both stores."""

from __future__ import annotations

import orjson

from fhir_server.search.extract import extract_index
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import VersionWrite


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
