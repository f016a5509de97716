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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

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

    def __init__(self, client: Any, *, database: str = "medicore") -> None:
        self.client = client
        self.db = client[database]
        self.transactions = False

    @classmethod
    def from_uri(cls, uri: str, *, database: str = "medicore") -> MongoStore:
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return cls(client, database=database)

    async def open(self) -> None:
        async with _mapped_errors():
            await self.db.history.create_index([("seq", DESCENDING)])
            await self.db.history.create_index([("type", ASCENDING), ("seq", DESCENDING)])
            await self.db.history.create_index([("type", ASCENDING), ("id", ASCENDING)])
            await self.db.resources.create_index([("type", ASCENDING), ("lastUpdated", ASCENDING)])
            await self.db.records.create_index([("kind", ASCENDING), ("key", ASCENDING)])
            await self.db.records.create_index([("kind", ASCENDING), ("doc.status", ASCENDING)])
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

    # -- commit ----------------------------------------------------------------------------

    async def commit(self, batch: WriteBatch) -> None:
        async with _mapped_errors():
            if self.transactions:
                try:
                    async with (
                        self.client.start_session() as session,
                        await session.start_transaction(),
                    ):
                        await _Commit(self.db, session).apply(batch)
                except PyMongoError as exc:
                    if exc.has_error_label("TransientTransactionError"):
                        raise ConditionalConflict("transaction write conflict") from exc
                    raise
                return
            commit = _Commit(self.db, None)
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


class _Commit:
    """Applies one batch; without a transaction it keeps an undo log of what it changed."""

    def __init__(self, db: Any, session: Any) -> None:
        self.db = db
        self.session = session
        self.undo_steps: list[Callable[[], Awaitable[Any]]] = []

    async def apply(self, batch: WriteBatch) -> None:
        for claim in batch.claims:
            await self._claim(claim)
        for record in batch.records:
            await self._record(record)
        if not batch.writes:
            return
        counter = await self.db.counters.find_one_and_update(
            {"_id": "history_seq"},
            {"$inc": {"value": len(batch.writes)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        first_seq = counter["value"] - len(batch.writes) + 1
        for offset, write in enumerate(batch.writes):
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
