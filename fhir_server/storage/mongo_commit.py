"""One batch applied to MongoDB: in a transaction on a replica set, else step by step
with an undo log so that a failed commit leaves nothing behind."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from audit.chain import ChainHead, seal_batch
from fhir_server.storage import mongo_search
from fhir_server.storage.base import (
    ConditionalClaim,
    ConditionalConflict,
    RecordChanged,
    RecordExists,
    RecordWrite,
    StoreUnavailable,
    VersionConflict,
    VersionWrite,
    WriteBatch,
)
from fhir_server.storage.mongo_audit import audit_doc, audit_head

# Reseals of one audit append racing other writers on a store without transactions.
_AUDIT_APPEND_ATTEMPTS = 200
# A claim whose resource never appeared (its writer died mid-commit) is taken over after this.
_CLAIM_STALE_SECONDS = 30.0


class Commit:
    """Applies one batch; without a transaction it keeps an undo log of what it changed."""

    def __init__(self, db: Any, session: Any, audit_key: bytes) -> None:
        self.db = db
        self.session = session
        self.audit_key = audit_key
        self.undo_steps: list[Callable[[], Awaitable[Any]]] = []

    async def apply(self, batch: WriteBatch) -> None:
        if self.session is not None:
            await self._enter_gate()
        for claim in batch.claims:
            await self._claim(claim)
        for record in batch.records:
            await self._record(record)
        if batch.writes:
            await self._writes(batch.writes)
        if batch.audit:
            await self._audit(batch.audit)

    async def _enter_gate(self) -> None:
        """Every commit appends to the one audit chain, so commits are serial anyway.
        Writing this document first makes a commit that overlaps another fail at once
        (a write conflict, retried) instead of after all its work: with snapshot
        isolation two overlapping transactions could never both commit."""
        await self.db.counters.update_one(
            {"_id": "commit_gate"}, {"$inc": {"commits": 1}}, upsert=True, session=self.session
        )

    async def _audit(self, events: list[dict[str, Any]]) -> None:
        """Seal after the newest record; a racing writer makes the insert collide."""
        if self.session is None:
            await self._append_audit(events)
            return
        head = await audit_head(self.db, self.session)
        records = seal_batch(events, head=head, key=self.audit_key)
        try:
            await self.db.audit.insert_many(
                [audit_doc(r) for r in records], ordered=True, session=self.session
            )
        except (DuplicateKeyError, BulkWriteError) as exc:
            raise ConditionalConflict("the audit chain moved") from exc  # the transaction aborts

    async def _append_audit(self, events: list[dict[str, Any]]) -> None:
        """Without a transaction the data is already written: the audit records go after
        it one by one, each resealed after whoever took its position, so a racing writer
        costs a retry, never an undo of the data (which another reader may have seen),
        and no record is ever removed from the chain."""
        remaining = list(events)
        for _ in range(_AUDIT_APPEND_ATTEMPTS):
            head = await audit_head(self.db, None)
            while remaining:
                record = seal_batch(remaining[:1], head=head, key=self.audit_key)[0]
                try:
                    await self.db.audit.insert_one(audit_doc(record))
                except DuplicateKeyError:
                    break  # another writer took the position: reseal after it
                remaining.pop(0)
                head = ChainHead(record.position, record.hash)
            if not remaining:
                return
        raise StoreUnavailable("the audit chain kept moving; the write is not acknowledged")

    async def _writes(self, writes: list[VersionWrite]) -> None:
        current = [await self._write_current(write) for write in writes]
        counter = await self.db.counters.find_one_and_update(
            {"_id": "history_seq"},
            {"$inc": {"value": len(writes)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        first_seq = counter["value"] - len(writes) + 1
        for offset, (write, fields) in enumerate(zip(writes, current, strict=True)):
            await self._write_history(write, fields, seq=first_seq + offset)

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
        # The expected values go into the write's filter too: without a transaction the
        # read above may be stale by the time of the write.
        guard = {f"doc.{name}": value for name, value in (record.expect or {}).items()}
        if record.expect is not None and (
            before is None or any(before["doc"].get(n) != v for n, v in record.expect.items())
        ):
            raise RecordChanged(record.kind, record.key)
        if record.doc is None:
            await records.delete_one({"_id": key, **guard}, session=self.session)
        elif before is None:
            doc = {"_id": key, "kind": record.kind, "key": record.key, "doc": record.doc}
            try:
                await records.insert_one(doc, session=self.session)
            except DuplicateKeyError:
                raise RecordExists(record.kind, record.key) from None
        else:
            updated = await records.update_one(
                {"_id": key, **guard}, {"$set": {"doc": record.doc}}, session=self.session
            )
            if updated.matched_count != 1:
                raise RecordChanged(record.kind, record.key)
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

    async def _write_current(self, write: VersionWrite) -> dict[str, Any]:
        """The resource's current version; the fields its history entry repeats."""
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
        return fields

    async def _write_history(
        self, write: VersionWrite, fields: dict[str, Any], *, seq: int
    ) -> None:
        history_id = f"{write.resource_type}/{write.id}/{write.version}"
        history_doc = {**fields, "_id": history_id, "method": write.method, "seq": seq}
        del history_doc["idx"]
        try:
            await self.db.history.insert_one(history_doc, session=self.session)
        except DuplicateKeyError:
            raise VersionConflict(write.resource_type, write.id) from None
        except OperationFailure as exc:
            raise StoreUnavailable("history write failed") from exc
        self.undo_steps.append(lambda: self.db.history.delete_one({"_id": history_id}))
