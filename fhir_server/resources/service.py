"""The service layer: every FHIR interaction, with versioning, retries and transactions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fhir_server.digits import non_negative_int
from fhir_server.resources import errors
from fhir_server.resources.amendments import pin_targets
from fhir_server.resources.audit_batcher import AuditBatcher
from fhir_server.resources.auditing import AuditTrail
from fhir_server.resources.planning import Criteria, Outcome, Plan, Planner, check_body, check_type
from fhir_server.search.errors import SearchError
from fhir_server.search.parse import parse_search
from fhir_server.search.query import SearchQuery
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import (
    AtomicityUnavailable,
    ConditionalConflict,
    HistoryPage,
    SearchResult,
    Store,
    StoredResource,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from profiles import Validator

T = TypeVar("T")
# Re-plans after losing a race (each loser sees the winner's commit, after a jittered
# pause so that racers spread out): enough for dozens of writers on one resource.
_MAX_ATTEMPTS = 32


_MAX_VERSION = 2**63  # versions are int64 in both stores: this one never exists


class ResourceService:
    def __init__(
        self,
        store: Store,
        registry: SearchRegistry,
        *,
        validator: Validator | None = None,
        max_count: int = 1000,
    ) -> None:
        self.store = store
        self.registry = registry
        self.validator = validator or Validator.default()
        self.planner = Planner(store, registry, self.validator)
        self.audit_batcher = AuditBatcher(store)
        self.max_count = max_count

    # -- running plans -----------------------------------------------------------------

    async def run(
        self, build: Callable[[Plan], Awaitable[Any]], *, trail: AuditTrail | None = None
    ) -> Any:
        """Build a plan and commit it with its AuditEvents, re-planning after a lost race."""
        for attempt in range(_MAX_ATTEMPTS):
            plan = Plan(trail=trail)
            try:
                result = await guard(build(plan))
            except BaseException:
                if trail is not None:
                    trail.discard()
                raise
            events = await trail.drain_in_steps() if trail is not None else []
            if not (plan.batch.writes or plan.batch.records or events):
                return result
            plan.batch.audit = events
            try:
                await self.store.commit(plan.batch)
            except VersionConflict as exc:
                if plan.pinned:
                    raise errors.precondition_failed(
                        "the resource changed since the version named in If-Match"
                    ) from exc
                await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                continue
            except ConditionalConflict:
                # The winner may not have committed yet: back off before re-planning
                # (capped: a long conflict, e.g. a crashed process's open transaction on
                # MongoDB, must end in a 409 within seconds, not sleep for hours).
                await asyncio.sleep(0.005 * 2 ** min(attempt, 6))
                continue
            except StoreUnavailable as exc:
                msg = "the data store is unavailable; retry later"
                raise errors.store_failure(exc, msg) from exc
            except AtomicityUnavailable as exc:
                raise errors.FhirError(501, "not-supported", str(exc)) from exc
            return result
        raise errors.conflict("too many concurrent writers on the same resource; retry")

    async def commit_audit(self, trail: AuditTrail | None) -> None:
        """Make the request's pending AuditEvents durable; no unaudited access (503)."""
        if trail is None or not trail.pending:
            return
        events = trail.drain()
        try:
            await self.audit_batcher.commit(events)
        except (StoreUnavailable, ConditionalConflict) as exc:
            msg = "the audit trail cannot be written; retry later"
            raise errors.store_failure(exc, msg) from exc

    # -- reads -----------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> StoredResource:
        check_type(resource_type, writable=False)
        if resource_type == "AuditEvent":
            await self.catch_up_audit()
        stored = await guard(self.store.read(resource_type, resource_id))
        if stored is None:
            raise errors.not_found(f"{resource_type}/{resource_id} is not known")
        if stored.deleted:
            raise errors.gone(f"{resource_type}/{resource_id} was deleted")
        return stored

    async def vread(self, resource_type: str, resource_id: str, version: str) -> StoredResource:
        check_type(resource_type, writable=False)
        number = non_negative_int(version, limit=_MAX_VERSION)
        if number is None or number == _MAX_VERSION:  # not a number, or beyond any version
            raise errors.not_found("no such version")
        if resource_type == "AuditEvent":  # never versioned: version 1 is the record itself
            if version != "1":
                raise errors.not_found(f"AuditEvent/{resource_id}/_history/{version} is not known")
            return await self.read(resource_type, resource_id)
        stored = await guard(self.store.vread(resource_type, resource_id, number))
        if stored is None:
            raise errors.not_found(f"{resource_type}/{resource_id}/_history/{version} is not known")
        if stored.deleted:
            raise errors.gone(f"{resource_type}/{resource_id}/_history/{version} is a deletion")
        return stored

    async def history(
        self,
        *,
        resource_type: str | None,
        resource_id: str | None,
        since: str | None,
        count: int,
        cursor: str | None,
        types: tuple[str, ...] | None = None,
    ) -> HistoryPage:
        """Versions newest first. For an instance, the caller has already read it with
        ``read_any`` (404 when unknown), as it needs it for the access check."""
        if resource_type is not None:
            check_type(resource_type, writable=False)
        return await guard(
            self.store.history(
                resource_type=resource_type,
                resource_id=resource_id,
                since=since,
                count=max(1, min(count, self.max_count)),
                cursor=cursor,
                types=types,
            )
        )

    async def read_any(self, resource_type: str, resource_id: str) -> StoredResource:
        """The current version, tombstones included (instance history of a deleted one)."""
        check_type(resource_type, writable=False)
        if resource_type == "AuditEvent":
            return await self.read(resource_type, resource_id)  # never deleted; caught up
        stored = await guard(self.store.read(resource_type, resource_id))
        if stored is None:
            raise errors.not_found(f"{resource_type}/{resource_id} is not known")
        return stored

    def parse_query(
        self,
        resource_type: str | None,
        params: Sequence[tuple[str, str]],
        *,
        base_url: str,
        strict: bool,
    ) -> SearchQuery:
        if resource_type is not None:
            check_type(resource_type, writable=False)
        try:
            return parse_search(
                resource_type,
                params,
                self.registry,
                base_url=base_url,
                strict=strict,
                max_count=self.max_count,
            )
        except SearchError as exc:
            raise errors.bad_search(exc.param, exc.message) from exc

    async def search(self, query: SearchQuery) -> SearchResult:
        if query.involves("AuditEvent"):
            await self.catch_up_audit()
        try:
            return await guard(self.store.search(query))
        except SearchError as exc:
            raise errors.bad_search(exc.param, exc.message) from exc

    async def catch_up_audit(self) -> None:
        """Index every AuditEvent recorded so far, so auditors see their own trail (and no
        further: under load more keep arriving, and the answer must not wait for them)."""
        head = (await guard(self.store.audit_head())).position
        while await guard(self.store.index_audit(registry=self.registry, upto=head)) > 0:
            pass

    # -- writes ------------------------------------------------------------------------------

    async def create(
        self,
        resource_type: str,
        resource: Any,
        *,
        if_none_exist: Criteria | None = None,
        trail: AuditTrail | None = None,
    ) -> Outcome:
        check_type(resource_type, writable=True)
        body = check_body(resource, resource_type)
        body = {k: v for k, v in body.items() if k != "id"}  # create ignores a client id
        result: Outcome = await self.run(
            lambda plan: self.planner.create(plan, body, if_none_exist=if_none_exist), trail=trail
        )
        return result

    async def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: Any,
        *,
        if_match: int | None,
        trail: AuditTrail | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> Outcome:
        check_type(resource_type, writable=True)
        body = check_body(resource, resource_type)

        async def build(plan: Plan) -> Outcome:
            return await self._amend(
                plan,
                resource_type,
                resource_id,
                provenance,
                self.planner.update(plan, body, resource_id=resource_id, if_match=if_match),
            )

        result: Outcome = await self.run(build, trail=trail)
        return result

    async def _amend(
        self,
        plan: Plan,
        resource_type: str,
        resource_id: str,
        provenance: dict[str, Any] | None,
        change: Awaitable[Outcome],
    ) -> Outcome:
        """Run ``change`` as an amendment when ``provenance`` is given (X-Provenance)."""
        ref = f"{resource_type}/{resource_id}"
        if provenance is not None:
            plan.amendments[ref] = provenance
        outcome = await change
        if provenance is not None and ref in plan.versions:
            record = pin_targets({**provenance, "target": [{"reference": ref}]}, plan.versions)
            record = {k: v for k, v in record.items() if k != "id"}
            record.setdefault("recorded", plan.now)
            await self.planner.create(plan, record, check_access=False)
        return outcome

    async def conditional_update(
        self,
        resource_type: str,
        criteria: Criteria,
        resource: Any,
        *,
        if_match: int | None,
        trail: AuditTrail | None = None,
    ) -> Outcome:
        check_type(resource_type, writable=True)
        body = check_body(resource, resource_type)
        result: Outcome = await self.run(
            lambda plan: self.planner.conditional_update(
                plan, body, criteria=criteria, if_match=if_match
            ),
            trail=trail,
        )
        return result

    async def patch(
        self,
        resource_type: str,
        resource_id: str,
        operations: Any,
        *,
        if_match: int | None,
        trail: AuditTrail | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> Outcome:
        check_type(resource_type, writable=True)

        async def build(plan: Plan) -> Outcome:
            change = self.planner.patch(
                plan, resource_type, resource_id, operations, if_match=if_match
            )
            return await self._amend(plan, resource_type, resource_id, provenance, change)

        result: Outcome = await self.run(build, trail=trail)
        return result

    async def delete(
        self,
        resource_type: str,
        resource_id: str,
        *,
        if_match: int | None,
        trail: AuditTrail | None = None,
    ) -> Outcome:
        check_type(resource_type, writable=True)
        result: Outcome = await self.run(
            lambda plan: self.planner.delete(plan, resource_type, resource_id, if_match=if_match),
            trail=trail,
        )
        return result

    async def conditional_delete(
        self, resource_type: str, criteria: Criteria, *, trail: AuditTrail | None = None
    ) -> Outcome:
        check_type(resource_type, writable=True)
        result: Outcome = await self.run(
            lambda plan: self.planner.conditional_delete(plan, resource_type, criteria=criteria),
            trail=trail,
        )
        return result


async def guard(awaitable: Awaitable[T]) -> T:
    """Await a store call, turning storage failures into FHIR errors."""
    try:
        return await awaitable
    except StoreUnavailable as exc:
        raise errors.store_failure(exc, "the data store is unavailable; retry later") from exc
    except (VersionConflict, ConditionalConflict):
        raise
    except StoreError as exc:
        raise errors.bad_request("invalid paging cursor or request") from exc
