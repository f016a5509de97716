"""The audit chain in MongoDB: an insert-only ``audit`` collection, ``_id`` = position.

A batch is sealed after the newest record and inserted; a writer that raced it collides
on the unique ``_id`` and re-plans (inside a transaction on a replica set). AuditEvents
are made searchable as resources in the background (``index_audit``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead
from audit.events import fhir_instant
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import mongo_search
from fhir_server.storage.audit_view import readable_write
from fhir_server.storage.mongo_common import mapped_errors

_DUPLICATE_KEY = 11000  # MongoDB's error code for a duplicate key


async def audit_head(db: Any, session: Any) -> ChainHead:
    newest = await db.audit.find({}, session=session).sort("_id", DESCENDING).to_list(1)
    return ChainHead(newest[0]["_id"], newest[0]["hash"]) if newest else EMPTY_HEAD


def audit_doc(record: ChainedRecord, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "_id": record.position,
        "event_id": event["id"],
        "recorded": event["recorded"],
        "prev_hash": record.prev_hash,
        "hash": record.hash,
        "event": record.event_json.decode(),
    }


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
                yield ChainedRecord(
                    position=doc["_id"],
                    prev_hash=doc["prev_hash"],
                    hash=doc["hash"],
                    event_json=doc["event"].encode(),
                )
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
