"""Production store: MongoDB through pymongo's ``AsyncMongoClient``.

Collections: ``resources`` (current version per resource, ``_id`` "Type/id", search index
in ``idx``), ``history`` (every version, ``_id`` "Type/id/version", global ``seq``),
``counters`` (the atomic ``seq`` allocator) and ``claims`` (one document per
conditional-create criteria, whose unique ``_id`` serializes identical creates across
processes and hosts). On a replica set a batch commits in one multi-document
transaction; on a standalone server (and mongomock in CI) it is applied in order and
undone step by step if any step fails.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from audit.chain import EMPTY_HEAD, ChainedRecord, ChainHead, seal_batch
from audit.events import fhir_instant
from audit.sink import ChainConflict, check_follows
from fhir_server.search.extract import extract_index
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import mongo_search
from fhir_server.storage.base import (
    ConditionalClaim,
    ConditionalConflict,
    HistoryPage,
    RecordExists,
    RecordWrite,
    SearchResult,
    StoredResource,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    VersionWrite,
    WriteBatch,
)

if TYPE_CHECKING:
    from fhir_server.search.query import SearchQuery

# A claim whose resource never appeared (its writer died mid-commit) is taken over after this.
_CLAIM_STALE_SECONDS = 30.0


def _to_resource(doc: dict[str, Any]) -> StoredResource:
    body = doc.get("body")
    return StoredResource(
        resource_type=doc["type"],
        id=doc["id"],
        version=doc["version"],
        last_updated=doc["lastUpdated"],
        deleted=bool(doc.get("deleted")),
        body=body.encode() if isinstance(body, str) else None,
        method=doc.get("method", "PUT"),
    )


@asynccontextmanager
async def _mapped_errors() -> AsyncIterator[None]:
    try:
        yield
    except StoreError:
        raise
    except PyMongoError as exc:
        raise StoreUnavailable("the MongoDB store failed") from exc


class MongoStore:
    """The ``Store`` contract on a MongoDB database."""

    def __init__(self, client: Any, *, database: str = "medicore", audit_key: bytes = b"") -> None:
        self.client = client
        self.audit_key = audit_key
        self.db = client[database]
        self.transactions = False

    @classmethod
    def from_uri(
        cls, uri: str, *, database: str = "medicore", audit_key: bytes = b""
    ) -> MongoStore:
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return cls(client, database=database, audit_key=audit_key)

    async def open(self) -> None:
        async with _mapped_errors():
            await self.db.history.create_index([("seq", DESCENDING)])
            await self.db.history.create_index([("type", ASCENDING), ("seq", DESCENDING)])
            await self.db.history.create_index([("type", ASCENDING), ("id", ASCENDING)])
            await self.db.resources.create_index([("type", ASCENDING), ("lastUpdated", ASCENDING)])
            await self.db.records.create_index([("kind", ASCENDING), ("key", ASCENDING)])
            await self.db.records.create_index([("kind", ASCENDING), ("doc.status", ASCENDING)])
            await self.db.audit.create_index([("event_id", ASCENDING)], unique=True)
            await self.db.audit.create_index([("recorded", ASCENDING)])
            await mongo_search.ensure_indexes(self.db)
            self.transactions = await self._supports_transactions()

    async def _supports_transactions(self) -> bool:
        try:
            hello = await self.db.command("hello")
        except (PyMongoError, NotImplementedError):
            return False
        return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            result = close()
            if isinstance(result, Awaitable):
                await result

    async def ping(self) -> None:
        async with _mapped_errors():
            await self.db.command("ping")
            await self.db.counters.update_one(
                {"_id": "ping"}, {"$set": {"at": time.time()}}, upsert=True
            )

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        async with _mapped_errors():
            doc = await self.db.resources.find_one(
                {"_id": f"{resource_type}/{resource_id}"}, {"idx": 0}
            )
        return _to_resource(doc) if doc else None

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredResource | None:
        async with _mapped_errors():
            doc = await self.db.history.find_one(
                {"_id": f"{resource_type}/{resource_id}/{version}"}
            )
        return _to_resource(doc) if doc else None

    async def history(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: str | None = None,
        count: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        query: dict[str, Any] = {}
        if resource_type is not None:
            query["type"] = resource_type
        if resource_id is not None:
            query["id"] = resource_id
        if since is not None:
            query["lastUpdated"] = {"$gte": since}
        if cursor is not None:
            try:
                query["seq"] = {"$lt": int(cursor)}
            except ValueError as exc:
                raise StoreError("malformed history cursor") from exc
        async with _mapped_errors():
            docs = await self.db.history.find(query).sort("seq", DESCENDING).to_list(count + 1)
        page = docs[:count]
        more = len(docs) > count
        return HistoryPage([_to_resource(d) for d in page], str(page[-1]["seq"]) if more else None)

    async def search(self, query: SearchQuery) -> SearchResult:
        async with _mapped_errors():
            return await mongo_search.execute(self.db, query)

    async def count_matches(self, query: SearchQuery, *, limit: int) -> list[StoredResource]:
        async with _mapped_errors():
            return await mongo_search.matching(self.db, query, limit=limit)

    async def counts(self) -> dict[str, int]:
        pipeline = [{"$match": {"deleted": False}}, {"$group": {"_id": "$type", "n": {"$sum": 1}}}]
        async with _mapped_errors():
            rows = await self.db.resources.aggregate(pipeline).to_list(None)
        return {row["_id"]: row["n"] for row in rows}

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        async with _mapped_errors():
            doc = await self.db.records.find_one({"_id": f"{kind}/{key}"})
        return dict(doc["doc"]) if doc else None

    async def find_records(
        self,
        kind: str,
        *,
        where: dict[str, str | int | bool] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        query = _record_query(kind, where)
        if after is not None:
            query["key"] = {"$gt": after}
        async with _mapped_errors():
            docs = await self.db.records.find(query).sort("key", ASCENDING).to_list(limit)
        return [(d["key"], dict(d["doc"])) for d in docs]

    async def count_records(
        self, kind: str, *, where: dict[str, str | int | bool] | None = None
    ) -> int:
        async with _mapped_errors():
            count: int = await self.db.records.count_documents(_record_query(kind, where))
        return count

    # -- the audit chain (audit.sink.AuditSink) -----------------------------------------

    async def audit_head(self) -> ChainHead:
        async with _mapped_errors():
            return await _audit_head(self.db, None)

    async def append_audit(self, records: Sequence[ChainedRecord]) -> None:
        async with _mapped_errors():
            check_follows(await _audit_head(self.db, None), records)
            docs = [_audit_doc(r, r.event()) for r in records]
            try:
                await self.db.audit.insert_many(docs, ordered=True)
            except (DuplicateKeyError, BulkWriteError) as exc:
                raise ChainConflict("another writer extended the chain") from exc

    async def iter_audit(
        self, *, start: int = 1, stop: int | None = None
    ) -> AsyncIterator[ChainedRecord]:
        position = start
        while True:
            query: dict[str, Any] = {"_id": {"$gte": position}}
            if stop is not None:
                query["_id"]["$lte"] = stop
            async with _mapped_errors():
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
        async with _mapped_errors():
            low = await self.db.audit.find(query).sort("_id", ASCENDING).to_list(1)
            high = await self.db.audit.find(query).sort("_id", DESCENDING).to_list(1)
        return (low[0]["_id"], high[0]["_id"]) if low and high else None

    async def index_audit(self, *, limit: int = 2000) -> int:
        """Make recorded AuditEvents searchable; returns how many were indexed."""
        async with _mapped_errors():
            marker = await self.db.counters.find_one({"_id": "audit_indexed"})
            upto = marker["value"] if marker else 0
            query = {"_id": {"$gt": upto}}
            page = await self.db.audit.find(query).sort("_id", ASCENDING).to_list(limit)
            if not page:
                return 0
            for doc in page:
                with contextlib.suppress(DuplicateKeyError):
                    await self.db.resources.insert_one(_audit_resource_doc(doc))
            await self.db.counters.update_one(
                {"_id": "audit_indexed"}, {"$max": {"value": page[-1]["_id"]}}, upsert=True
            )
        return len(page)

    # -- commit ----------------------------------------------------------------------------

    async def commit(self, batch: WriteBatch) -> None:
        async with _mapped_errors():
            if self.transactions:
                try:
                    async with (
                        self.client.start_session() as session,
                        await session.start_transaction(),
                    ):
                        await _Commit(self.db, session, self.audit_key).apply(batch)
                except PyMongoError as exc:
                    if exc.has_error_label("TransientTransactionError"):
                        raise ConditionalConflict("transaction write conflict") from exc
                    raise
                return
            commit = _Commit(self.db, None, self.audit_key)
            try:
                await commit.apply(batch)
            except BaseException:
                await commit.undo()
                raise


def _record_query(kind: str, where: dict[str, str | int | bool] | None) -> dict[str, Any]:
    query: dict[str, Any] = {"kind": kind}
    for field_name, value in (where or {}).items():
        query[f"doc.{field_name}"] = value
    return query


async def _audit_head(db: Any, session: Any) -> ChainHead:
    newest = await db.audit.find({}, session=session).sort("_id", DESCENDING).to_list(1)
    return ChainHead(newest[0]["_id"], newest[0]["hash"]) if newest else EMPTY_HEAD


def _audit_doc(record: ChainedRecord, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "_id": record.position,
        "event_id": event["id"],
        "recorded": event["recorded"],
        "prev_hash": record.prev_hash,
        "hash": record.hash,
        "event": record.event_json.decode(),
    }


def _audit_resource_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The searchable resource view of one chained AuditEvent."""
    body = orjson.loads(doc["event"])
    last_updated = doc["recorded"].replace("Z", "+00:00")
    body["meta"] = {"versionId": "1", "lastUpdated": last_updated}
    return {
        "_id": f"AuditEvent/{doc['event_id']}",
        "type": "AuditEvent",
        "id": doc["event_id"],
        "version": 1,
        "lastUpdated": last_updated,
        "deleted": False,
        "body": orjson.dumps(body).decode(),
        "idx": mongo_search.index_document(extract_index(body, SearchRegistry.default())),
    }


class _Commit:
    """Applies one batch; without a transaction it keeps an undo log of what it changed."""

    def __init__(self, db: Any, session: Any, audit_key: bytes) -> None:
        self.db = db
        self.session = session
        self.audit_key = audit_key
        self.undo_steps: list[Callable[[], Awaitable[Any]]] = []

    async def apply(self, batch: WriteBatch) -> None:
        for claim in batch.claims:
            await self._claim(claim)
        for record in batch.records:
            await self._record(record)
        if batch.writes:
            await self._writes(batch.writes)
        if batch.audit:
            await self._audit(batch.audit)

    async def _audit(self, events: list[dict[str, Any]]) -> None:
        """Seal after the newest record; a racing writer makes the insert collide."""
        head = await _audit_head(self.db, self.session)
        records = seal_batch(events, head=head, key=self.audit_key)
        docs = [_audit_doc(r, e) for r, e in zip(records, events, strict=True)]
        event_ids = [d["event_id"] for d in docs]
        audit = self.db.audit
        try:
            await audit.insert_many(docs, ordered=True, session=self.session)
        except (DuplicateKeyError, BulkWriteError) as exc:
            # Only this commit's own records go: a failed commit must leave no trace.
            self.undo_steps.append(lambda: audit.delete_many({"event_id": {"$in": event_ids}}))
            raise ConditionalConflict("the audit chain moved") from exc

    async def _writes(self, writes: list[VersionWrite]) -> None:
        counter = await self.db.counters.find_one_and_update(
            {"_id": "history_seq"},
            {"$inc": {"value": len(writes)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        first_seq = counter["value"] - len(writes) + 1
        for offset, write in enumerate(writes):
            await self._write(write, seq=first_seq + offset)

    async def undo(self) -> None:
        for step in reversed(self.undo_steps):
            # Best effort: the store is failing; leftovers are superseded by retries.
            with contextlib.suppress(PyMongoError):
                await step()

    async def _claim(self, claim: ConditionalClaim) -> None:
        ref = f"{claim.resource_type}/{claim.id}"
        claims = self.db.claims
        # Read first, then insert: inside a transaction a duplicate-key error would abort it.
        held = await claims.find_one({"_id": claim.key}, session=self.session)
        if held is None:
            try:
                doc = {"_id": claim.key, "ref": ref, "at": time.time()}
                await claims.insert_one(doc, session=self.session)
            except DuplicateKeyError:
                raise ConditionalConflict(claim.key) from None
            self.undo_steps.append(lambda: claims.delete_one({"_id": claim.key, "ref": ref}))
        elif held["ref"] != ref:
            await self._take_over(claim, held, ref)
        for match in await mongo_search.matching(self.db, claim.query, limit=2):
            if f"{match.resource_type}/{match.id}" != ref:
                raise ConditionalConflict(claim.key)

    async def _take_over(self, claim: ConditionalClaim, held: dict[str, Any], ref: str) -> None:
        claims = self.db.claims
        if not await self._claim_is_stale(held, claim):
            raise ConditionalConflict(claim.key)
        taken = await claims.update_one(
            {"_id": claim.key, "ref": held["ref"]},
            {"$set": {"ref": ref, "at": time.time()}},
            session=self.session,
        )
        if taken.modified_count != 1:
            raise ConditionalConflict(claim.key) from None
        old_ref, old_at = held["ref"], held["at"]
        self.undo_steps.append(
            lambda: claims.update_one(
                {"_id": claim.key, "ref": ref}, {"$set": {"ref": old_ref, "at": old_at}}
            )
        )

    async def _record(self, record: RecordWrite) -> None:
        records = self.db.records
        key = f"{record.kind}/{record.key}"
        before = await records.find_one({"_id": key}, session=self.session)
        if record.if_absent and before is not None:
            raise RecordExists(record.kind, record.key)
        if record.doc is None:
            await records.delete_one({"_id": key}, session=self.session)
        elif before is None:
            doc = {"_id": key, "kind": record.kind, "key": record.key, "doc": record.doc}
            try:
                await records.insert_one(doc, session=self.session)
            except DuplicateKeyError:
                raise RecordExists(record.kind, record.key) from None
        else:
            await records.update_one(
                {"_id": key}, {"$set": {"doc": record.doc}}, session=self.session
            )
        if before is None:
            self.undo_steps.append(lambda: records.delete_one({"_id": key}))
        else:
            self.undo_steps.append(lambda: records.replace_one({"_id": key}, before))

    async def _claim_is_stale(self, held: dict[str, Any], claim: ConditionalClaim) -> bool:
        """A claim is stale when its resource no longer matches, or never came to be."""
        holder = await self.db.resources.find_one({"_id": held["ref"]}, {"_id": 1})
        if holder is None:
            return bool(time.time() - held.get("at", 0) > _CLAIM_STALE_SECONDS)
        matches = await mongo_search.matching(self.db, claim.query, limit=2)
        return all(f"{m.resource_type}/{m.id}" != held["ref"] for m in matches)

    async def _write(self, write: VersionWrite, *, seq: int) -> None:
        key = f"{write.resource_type}/{write.id}"
        fields: dict[str, Any] = {
            "type": write.resource_type,
            "id": write.id,
            "version": write.version,
            "lastUpdated": write.last_updated,
            "deleted": write.deleted,
            "body": write.body.decode() if write.body is not None else None,
            "idx": mongo_search.index_document(write.index) if write.index is not None else {},
        }
        resources = self.db.resources
        if write.expected_version == 0:
            try:
                await resources.insert_one({"_id": key, **fields}, session=self.session)
            except DuplicateKeyError:
                raise VersionConflict(write.resource_type, write.id) from None
            self.undo_steps.append(lambda: resources.delete_one({"_id": key}))
        else:
            before = await resources.find_one_and_update(
                {"_id": key, "version": write.expected_version},
                {"$set": fields},
                session=self.session,
                return_document=ReturnDocument.BEFORE,
            )
            if before is None:
                raise VersionConflict(write.resource_type, write.id)
            self.undo_steps.append(
                lambda: resources.replace_one({"_id": key, "version": write.version}, before)
            )
        history_id = f"{key}/{write.version}"
        history_doc = {**fields, "_id": history_id, "method": write.method, "seq": seq}
        del history_doc["idx"]
        try:
            await self.db.history.insert_one(history_doc, session=self.session)
        except DuplicateKeyError:
            raise VersionConflict(write.resource_type, write.id) from None
        except OperationFailure as exc:
            raise StoreUnavailable("history write failed") from exc
        self.undo_steps.append(lambda: self.db.history.delete_one({"_id": history_id}))
