"""Production store: MongoDB through pymongo's ``AsyncMongoClient``.

Collections: ``resources`` (current version per resource, ``_id`` "Type/id", search index
in ``idx``), ``history`` (every version, ``_id`` "Type/id/version", global ``seq``),
``counters`` (the atomic ``seq`` allocator) and ``claims`` (one document per
conditional-create criteria, whose unique ``_id`` serializes identical creates across
processes and hosts). On a replica set a batch commits in one multi-document
transaction; on a standalone server it is applied in order and
undone step by step if any step fails (transaction Bundles are refused there).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import ConnectionFailure, PyMongoError

from fhir_server.storage import mongo_search
from fhir_server.storage.base import (
    AtomicityUnavailable,
    ConditionalConflict,
    HistoryPage,
    SearchResult,
    StoredResource,
    WriteBatch,
    decode_history_cursor,
)
from fhir_server.storage.mongo_audit import MongoAuditSink
from fhir_server.storage.mongo_commit import Commit
from fhir_server.storage.mongo_common import mapped_errors, record_query, to_resource

if TYPE_CHECKING:
    from fhir_server.search.query import SearchQuery


# How long a commit that overlapped another is run again before the batch goes back to be
# planned again (each attempt waits out the other's commit: with the gate in
# ``mongo_commit`` overlapping commits run one after the other).
_TRANSIENT_SECONDS = 15.0
_TRANSIENT_PAUSE = (0.002, 0.05)  # first and longest pause between attempts (jittered)


def _changes(batch: WriteBatch) -> int:
    """Resource versions and records a batch changes (its claims and audit records are
    bound to them). Without transactions a crash between two of them would leave the
    batch half-applied: the undo log only runs when the process lives to run it."""
    return len(batch.writes) + len(batch.records)


class MongoStore(MongoAuditSink):
    """The ``Store`` contract on a MongoDB database."""

    def __init__(self, client: Any, *, database: str = "medicore", audit_key: bytes = b"") -> None:
        self.client = client
        self.audit_key = audit_key
        self.db = client[database]
        self.transactions = False
        # Every commit takes the history counter and the audit chain head: two commits of
        # one process would only make each other abort and redo their work, so this
        # process sends them one at a time. Other processes' commits still race ours;
        # what is right (versions, claims, chain) is decided by the server, never here.
        self._one_commit_at_a_time = asyncio.Lock()

    @classmethod
    def from_uri(
        cls, uri: str, *, database: str = "medicore", audit_key: bytes = b""
    ) -> MongoStore:
        """``database``: used only when the URI names none in its path (``.../medicore?...``
        names one, as every MongoDB tool reads it)."""
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        named = client.get_default_database(default=database).name
        return cls(client, database=named, audit_key=audit_key)

    async def open(self) -> None:
        async with mapped_errors():
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
        async with mapped_errors():
            await self.db.command("ping")
            await self.db.counters.update_one(
                {"_id": "ping"}, {"$set": {"at": time.time()}}, upsert=True
            )

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        async with mapped_errors():
            doc = await self.db.resources.find_one(
                {"_id": f"{resource_type}/{resource_id}"}, {"idx": 0}
            )
        return to_resource(doc) if doc else None

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredResource | None:
        async with mapped_errors():
            doc = await self.db.history.find_one(
                {"_id": f"{resource_type}/{resource_id}/{version}"}
            )
        return to_resource(doc) if doc else None

    async def history(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: str | None = None,
        count: int = 50,
        cursor: str | None = None,
        types: tuple[str, ...] | None = None,
    ) -> HistoryPage:
        query: dict[str, Any] = {}
        if resource_type is not None:
            query["type"] = resource_type
        if resource_id is not None:
            query["id"] = resource_id
        if types is not None:
            query.setdefault("$and", []).append({"type": {"$in": list(types)}})
        if since is not None:
            query["lastUpdated"] = {"$gte": since}
        if cursor is not None:
            query["seq"] = {"$lt": decode_history_cursor(cursor)}
        async with mapped_errors():
            docs = await self.db.history.find(query).sort("seq", DESCENDING).to_list(count + 1)
        page = docs[:count]
        more = len(docs) > count
        return HistoryPage([to_resource(d) for d in page], str(page[-1]["seq"]) if more else None)

    async def search(self, query: SearchQuery) -> SearchResult:
        async with mapped_errors():
            return await mongo_search.execute(self.db, query)

    async def count_matches(self, query: SearchQuery, *, limit: int) -> list[StoredResource]:
        async with mapped_errors():
            return await mongo_search.matching(self.db, query, limit=limit)

    async def counts(self) -> dict[str, int]:
        pipeline = [{"$match": {"deleted": False}}, {"$group": {"_id": "$type", "n": {"$sum": 1}}}]
        async with mapped_errors():
            cursor = await self.db.resources.aggregate(pipeline)  # a coroutine on pymongo's
            rows = await cursor.to_list(None)
        return {row["_id"]: row["n"] for row in rows}

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        async with mapped_errors():
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
        query = record_query(kind, where)
        if after is not None:
            query["key"] = {"$gt": after}
        async with mapped_errors():
            docs = await self.db.records.find(query).sort("key", ASCENDING).to_list(limit)
        return [(d["key"], dict(d["doc"])) for d in docs]

    async def count_records(
        self, kind: str, *, where: dict[str, str | int | bool] | None = None
    ) -> int:
        async with mapped_errors():
            count: int = await self.db.records.count_documents(record_query(kind, where))
        return count

    # -- commit ----------------------------------------------------------------------------

    async def commit(self, batch: WriteBatch) -> None:
        async with self._one_commit_at_a_time, mapped_errors():
            if self.transactions:
                await self._commit_in_transaction(batch)
                return
            if batch.transaction and _changes(batch) > 1:
                raise AtomicityUnavailable(
                    "this MongoDB server runs without transactions (a standalone server);"
                    " transaction Bundles and HL7 messages need a replica set (one node is"
                    " enough)"
                )
            commit = Commit(self.db, None, self.audit_key)
            try:
                await commit.apply(batch)
            except BaseException:
                await commit.undo()
                raise

    async def _commit_in_transaction(self, batch: WriteBatch) -> None:
        """One transaction, run again while MongoDB calls it transient (as the driver's
        ``with_transaction`` does): a write conflict only says another transaction touched
        the same document first; run again, the batch sees that transaction's outcome and
        fails with the contract's own error (VersionConflict, ConditionalConflict)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _TRANSIENT_SECONDS
        attempt = 0
        while loop.time() < deadline:
            try:
                async with (
                    self.client.start_session() as session,
                    await session.start_transaction(),
                ):
                    await Commit(self.db, session, self.audit_key).apply(batch)
                return
            except PyMongoError as exc:
                # The driver labels a lost server "transient" too: that is an outage
                # (503 at once), not a conflict to retry until the request times out.
                if isinstance(exc, ConnectionFailure) or not exc.has_error_label(
                    "TransientTransactionError"
                ):
                    raise
            pause = min(_TRANSIENT_PAUSE[0] * 2**attempt, _TRANSIENT_PAUSE[1])
            await asyncio.sleep(random.uniform(0, pause))  # jitter splits racers
            attempt += 1
        raise ConditionalConflict("the transaction kept conflicting; plan it again")
