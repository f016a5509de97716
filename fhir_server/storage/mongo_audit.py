"""The audit chain in MongoDB: an insert-only ``audit`` collection, ``_id`` = position.

A batch is sealed after the newest record and inserted; a writer that raced it collides
on the unique ``_id`` and re-plans (inside a transaction on a replica set). AuditEvents
are made searchable as resources in the background (``index_audit``).

A document holds ``_id``, ``event_id``, ``recorded``, ``prev_hash``, ``hash``, ``event``
(JSON text) and ``layout`` (absent in documents from before layout 2: those are layout
1); ``audit.layout`` says what the hash covers. Fields other than these are read by
nothing (search, export, verify), so none can change what MediCore reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from audit.chain import EMPTY_HEAD, LEGACY_LAYOUT, ChainedRecord, ChainHead
from audit.events import fhir_instant
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import mongo_search
from fhir_server.storage.audit_view import readable_write
from fhir_server.storage.mongo_common import mapped_errors

_DUPLICATE_KEY = 11000  # MongoDB's error code for a duplicate key


async def audit_head(db: Any, session: Any) -> ChainHead:
    """The newest record; a hash that is not text (a forged document) is sealed after as text."""
    newest = await db.audit.find({}, session=session).sort("_id", DESCENDING).to_list(1)
    return ChainHead(newest[0]["_id"], str(newest[0].get("hash"))) if newest else EMPTY_HEAD


def audit_doc(record: ChainedRecord) -> dict[str, Any]:
    """The document of one sealed record: its columns exactly as sealed."""
    return {
        "_id": record.position,
        "event_id": record.event_id,
        "recorded": record.recorded,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
        "event": record.event_json.decode(),
        "layout": record.layout,
    }


def chained_record(doc: dict[str, Any]) -> ChainedRecord:
    """A stored document as the chain check reads it; odd field types fail their seal."""
    event = doc.get("event")
    return ChainedRecord(
        position=doc["_id"],
        prev_hash=doc.get("prev_hash", ""),  # a missing or odd field fails the seal
        hash=doc.get("hash", ""),
        event_json=event.encode() if isinstance(event, str) else b"",
        event_id=doc.get("event_id"),
        recorded=doc.get("recorded"),
        layout=doc.get("layout", LEGACY_LAYOUT),
    )


def audit_resource_doc(doc: dict[str, Any], registry: SearchRegistry) -> dict[str, Any] | None:
    """The searchable resource document of one chained AuditEvent (None: unreadable)."""
    event = doc.get("event")
    write = readable_write(
        doc["_id"],
        str(doc.get("event_id")),
        str(doc.get("recorded")),
        event.encode() if isinstance(event, str) else b"",
        registry=registry,
    )
    if write is None:
        return None
    assert write.body is not None and write.index is not None
    return {
        "_id": f"AuditEvent/{write.id}",
        "type": "AuditEvent",
        "id": write.id,
        "version": 1,
        "lastUpdated": write.last_updated,
        "deleted": False,
        "body": write.body.decode(),
        "idx": mongo_search.index_document(write.index),
    }


class MongoAuditSink:
    """``audit.sink.AuditSink`` on the store's database."""

    db: Any

    async def audit_head(self) -> ChainHead:
        async with mapped_errors():
            return await audit_head(self.db, None)

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        position = start
        while True:
            query: dict[str, Any] = {"_id": {"$gte": position}}
            if stop is not None:
                query["_id"]["$lte"] = stop
            async with mapped_errors():
                page = await self.db.audit.find(query).sort("_id", ASCENDING).to_list(1000)
            for doc in page:
                yield chained_record(doc)
            if len(page) < 1000:
                return
            position = page[-1]["_id"] + 1

    async def audit_bounds(self, *, since: datetime, until: datetime) -> tuple[int, int] | None:
        query = {"recorded": {"$gte": fhir_instant(since), "$lt": fhir_instant(until)}}
        async with mapped_errors():
            low = await self.db.audit.find(query).sort("_id", ASCENDING).to_list(1)
            high = await self.db.audit.find(query).sort("_id", DESCENDING).to_list(1)
        return (low[0]["_id"], high[0]["_id"]) if low and high else None

    async def audit_backlog(self) -> int:
        async with mapped_errors():
            recorded = (await audit_head(self.db, None)).position
            marker = await self.db.counters.find_one({"_id": "audit_indexed"})
        return max(0, recorded - (marker["value"] if marker else 0))

    async def index_audit(
        self, *, registry: SearchRegistry, limit: int = 1000, upto: int | None = None
    ) -> int:
        """Make recorded AuditEvents searchable; returns how many were indexed."""
        async with mapped_errors():
            marker = await self.db.counters.find_one({"_id": "audit_indexed"})
            query: dict[str, Any] = {"_id": {"$gt": marker["value"] if marker else 0}}
            if upto is not None:
                query["_id"]["$lte"] = upto
            page = (
                await self.db.audit.find(query).sort("_id", ASCENDING).limit(limit).to_list(limit)
            )
            if not page:
                return 0
            docs = [d for d in (audit_resource_doc(doc, registry) for doc in page) if d]
            try:  # one round trip; unordered, so one already indexed skips only itself
                if docs:
                    await self.db.resources.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != _DUPLICATE_KEY for e in exc.details["writeErrors"]):
                    raise
            await self.db.counters.update_one(
                {"_id": "audit_indexed"}, {"$max": {"value": page[-1]["_id"]}}, upsert=True
            )
        return len(page)
