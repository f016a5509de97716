"""The searchable resource view of a chained AuditEvent, the same for both stores."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.search.extract import extract_index
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import VersionWrite


def audit_event_write(
    event_id: str, recorded: str, event_json: bytes, *, registry: SearchRegistry
) -> VersionWrite:
    """Version 1 of ``AuditEvent/<event_id>``, with meta and search index entries."""
    return _view(orjson.loads(event_json), event_id, recorded, registry)


def audit_event_view(event: dict[str, Any], *, registry: SearchRegistry) -> VersionWrite:
    """The same from the event about to be recorded (``event`` itself is not changed)."""
    return _view(event, event["id"], event["recorded"], registry)


def _view(
    event: dict[str, Any], event_id: str, recorded: str, registry: SearchRegistry
) -> VersionWrite:
    last_updated = recorded.replace("Z", "+00:00")
    body = {**event, "meta": {"versionId": "1", "lastUpdated": last_updated}}
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
