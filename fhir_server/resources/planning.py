"""Turns write interactions into a ``WriteBatch`` planned against the current state.

A plan is built from reads, then committed at once; the store checks at commit time that
every version it was planned against is still current (and that conditional-create
criteria still match nothing else). A stale plan is simply built again, which is how
parallel writers never lose an update and parallel conditional creates make one resource.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jsonpatch

from auth.compartment import compartment_patients
from fhir_server.resources import errors
from fhir_server.resources.access import OPEN, Guard
from fhir_server.resources.amendments import check_change, same_content
from fhir_server.resources.auditing import AuditTrail
from fhir_server.resources.meta import (
    SUPPORTED_TYPES,
    WRITABLE_TYPES,
    from_json,
    from_json_exact,
    is_valid_id,
    new_id,
    now_instant,
    stamp,
    to_json,
)
from fhir_server.resources.offload import WriteChecks
from fhir_server.search.errors import SearchError
from fhir_server.search.parse import parse_search
from fhir_server.search.query import SearchQuery, without_type
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.base import (
    ConditionalClaim,
    Store,
    StoredResource,
    VersionWrite,
    WriteBatch,
)
from profiles import Validator

Criteria = Sequence[tuple[str, str]]


@dataclass(slots=True)
class Outcome:
    """What one interaction did: the version now current and the HTTP status it earns."""

    status: int
    stored: StoredResource | None
    created: bool = False
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """Conditional criteria looked up for the caller: the criteria as parsed (the commit
    re-checks them over every resource), the caller's matches (at most two), and whether
    resources the caller may not read match too."""

    query: SearchQuery
    visible: list[StoredResource]
    hidden: bool


@dataclass
class Plan:
    """Writes gathered for one commit; ``pinned`` means a client named the version."""

    now: str = field(default_factory=now_instant)
    batch: WriteBatch = field(default_factory=WriteBatch)
    pinned: bool = False
    trail: AuditTrail | None = None
    # Amendment Provenances by the "Type/id" they correct, and versions written here.
    amendments: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # Conditional criteria looked up in this plan, by key. A transaction
    # resolves its ids first and plans its entries after; both see one look-up.
    lookups: dict[str, Lookup] = field(default_factory=dict)

    @property
    def guard(self) -> Guard:
        return self.trail.guard if self.trail is not None else OPEN

    def note(self, interaction: str, outcome: Outcome, resource: dict[str, Any] | None) -> Outcome:
        """Record the interaction's AuditEvent; it commits in the same batch as the write."""
        if self.trail is not None:
            stored = outcome.stored
            self.trail.add(
                interaction,
                status=outcome.status,
                resource_type=stored.resource_type if stored else None,
                resource_id=stored.id if stored else None,
                version=stored.version if stored else None,
                patients=compartment_patients(resource) if resource else (),
            )
        return outcome

    def add(self, write: VersionWrite) -> StoredResource:
        key = f"{write.resource_type}/{write.id}"
        if key in self.versions:
            raise errors.bad_request(f"{key} is written twice in one request", code="business-rule")
        self.batch.writes.append(write)
        self.versions[key] = write.version
        return StoredResource(
            resource_type=write.resource_type,
            id=write.id,
            version=write.version,
            last_updated=write.last_updated,
            deleted=write.deleted,
            body=write.body,
            method=write.method,
        )


def criteria_key(resource_type: str, criteria: Criteria) -> str:
    """Normalized criteria: the same conditions in any order give the same key."""
    return f"{resource_type}?{urlencode(sorted(criteria))}"


def check_type(resource_type: str, *, writable: bool) -> None:
    if resource_type not in SUPPORTED_TYPES:
        raise errors.unsupported_target(resource_type)
    if writable and resource_type not in WRITABLE_TYPES:
        raise errors.method_not_allowed(f"{resource_type} is written by the server only")


def check_body(resource: Any, resource_type: str) -> dict[str, Any]:
    if not isinstance(resource, dict):
        raise errors.bad_request("the body must be a JSON object (a FHIR resource)")
    body_type = resource.get("resourceType")
    if body_type != resource_type:
        raise errors.bad_request(
            f"resourceType must be {resource_type} for this URL", f"{resource_type}.resourceType"
        )
    if not isinstance(resource.get("meta", {}), dict):  # read before validation runs
        raise errors.bad_request("meta must be an object", f"{resource_type}.meta")
    return resource


class Planner:
    """Builds plans; knows the store only through reads."""

    def __init__(self, store: Store, registry: SearchRegistry, validator: Validator) -> None:
        self.store = store
        self.registry = registry
        self.validator = validator
        self.checks = WriteChecks(validator, registry)  # the app sets up worker processes

    # -- criteria ------------------------------------------------------------------------

    def criteria_query(self, resource_type: str, criteria: Criteria) -> SearchQuery:
        if not criteria:
            raise errors.bad_request("conditional interaction without search criteria")
        try:
            query = parse_search(
                resource_type, list(criteria), self.registry, base_url="", strict=True
            )
        except SearchError as exc:
            raise errors.bad_search(exc.param, exc.message) from exc
        # The audit trail is no precondition for a write (and the SQLite writer re-checks
        # criteria on the store's file alone): untyped chains leave AuditEvent out, and
        # criteria that need it are refused.
        kept = []
        for criterion in query.criteria:
            narrowed = without_type(criterion, "AuditEvent")
            if narrowed is None:
                raise errors.bad_search(
                    criterion.param, "conditional criteria cannot use AuditEvent"
                )
            kept.append(narrowed)
        query.criteria = tuple(kept)
        return query

    async def matches(self, plan: Plan, resource_type: str, criteria: Criteria) -> Lookup:
        """The caller's matches of ``criteria`` (looked up once per plan): the store runs
        them confined to what the caller may search, so no match it may not read is ever
        returned or counted; a second, unconfined count tells whether such matches exist."""
        key = criteria_key(resource_type, criteria)
        known = plan.lookups.get(key)
        if known is None:
            query = self.criteria_query(resource_type, criteria)
            confined = plan.guard.confine(query)
            visible = await self.store.count_matches(confined, limit=2)
            hidden = False
            narrowed = (confined.resource_types, confined.criteria) != (
                query.resource_types,
                query.criteria,
            )
            if narrowed and len(visible) < 2:
                every = await self.store.count_matches(query, limit=2)
                hidden = len(every) > len(visible)
            known = Lookup(query, visible, hidden)
            plan.lookups[key] = known
        return known

    async def single_match(
        self,
        plan: Plan,
        resource_type: str,
        criteria: Criteria,
        *,
        several: str,
        creates: bool = False,
    ) -> StoredResource | None:
        """The caller's one match of ``criteria``, or None; a 412 saying ``several`` when
        more than one matches (conditional interactions must not guess).

        ``creates``: no match makes a new resource. When only resources the caller may not
        read match, that would be the duplicate the criteria exist to prevent, so it is
        refused (412) without naming or returning them (docs/security.md).
        """
        found = await self.matches(plan, resource_type, criteria)
        if len(found.visible) > 1:
            raise errors.precondition_failed(several)
        if found.visible:
            return found.visible[0]
        if creates and found.hidden:
            raise errors.precondition_failed(
                "the conditional criteria match a resource outside your access; nothing was"
                " created (ask for access, or drop the condition)"
            )
        return None

    def claim(
        self, plan: Plan, resource_type: str, criteria: Criteria, resource_id: str
    ) -> ConditionalClaim:
        """Criteria that must still match nothing else at commit (after ``matches``)."""
        key = criteria_key(resource_type, criteria)
        return ConditionalClaim(
            key=key,
            query=plan.lookups[key].query,
            resource_type=resource_type,
            id=resource_id,
        )

    async def _readable(self, plan: Plan, stored: StoredResource) -> bool:
        """Whether the caller may read ``stored`` (a tombstone: the version it deleted).
        Deleting or patching what one may not read answers as if it did not exist."""
        body = stored.body
        if body is None and stored.version > 1:
            before = await self.store.vread(stored.resource_type, stored.id, stored.version - 1)
            body = before.body if before is not None else None
        return body is None or plan.guard.may_read(from_json(body))

    # -- the version write ---------------------------------------------------------------

    async def _write(
        self,
        plan: Plan,
        resource: dict[str, Any],
        *,
        resource_id: str,
        current: StoredResource | None,
        method: str,
    ) -> StoredResource:
        resource_type = resource["resourceType"]
        version = (current.version if current else 0) + 1
        stamped = stamp(resource, resource_id=resource_id, version=version, now=plan.now)
        body = to_json(stamped)
        index = await self.checks.checked_index(
            stamped, mode="create" if current is None else "update", size=len(body)
        )
        return plan.add(
            VersionWrite(
                resource_type=resource_type,
                id=resource_id,
                version=version,
                expected_version=current.version if current else 0,
                last_updated=plan.now,
                method=method,
                body=body,
                index=index,
            )
        )

    # -- interactions ----------------------------------------------------------------------

    async def create(
        self,
        plan: Plan,
        resource: dict[str, Any],
        *,
        if_none_exist: Criteria | None = None,
        resource_id: str | None = None,
        check_access: bool = True,
    ) -> Outcome:
        resource_type = resource["resourceType"]
        if check_access:  # False only for the Provenance an amendment writes for itself
            plan.guard.require("create", resource_type, resource)
        if if_none_exist:
            plan.guard.require("search", resource_type)  # a match reveals existence
            found = await self.single_match(
                plan,
                resource_type,
                if_none_exist,
                several="If-None-Exist criteria match several resources",
                creates=True,
            )
            if found is not None:
                return plan.note("create", Outcome(200, found), resource)
        new = resource_id or new_id()
        if if_none_exist:
            plan.batch.claims.append(self.claim(plan, resource_type, if_none_exist, new))
        stored = await self._write(plan, resource, resource_id=new, current=None, method="POST")
        return plan.note("create", Outcome(201, stored, created=True), {**resource, "id": new})

    async def update(
        self,
        plan: Plan,
        resource: dict[str, Any],
        *,
        resource_id: str,
        if_match: int | None = None,
        method: str = "PUT",
        current: StoredResource | None = None,
    ) -> Outcome:
        """``current``: the stored version when the caller has just read it (a patch)."""
        resource_type = resource["resourceType"]
        if not is_valid_id(resource_id):
            raise errors.bad_request("the id in the URL is not a valid FHIR id")
        body_id = resource.get("id")
        if body_id is None:
            raise errors.bad_request("the resource must carry its id", f"{resource_type}.id")
        if body_id != resource_id:
            raise errors.bad_request(
                "the id in the body differs from the URL", f"{resource_type}.id"
            )
        if current is None:
            current = await self.store.read(resource_type, resource_id)
        interaction = "patch" if method == "PATCH" else "update"
        plan.guard.require(interaction, resource_type, resource)
        stored_now = from_json(current.body) if current and current.body is not None else None
        if stored_now is not None:
            plan.guard.require(interaction, resource_type, stored_now)
        if if_match is not None:
            plan.pinned = True
            if current is None or current.deleted or current.version != if_match:
                raise errors.precondition_failed("If-Match does not name the current version")
        if current is not None and stored_now is not None:
            amendment = plan.amendments.get(f"{resource_type}/{resource_id}")
            check_change(stored_now, resource, amendment=amendment)
            if same_content(stored_now, resource):
                # A no-op update (e.g. an HL7 replay or a repeated A08) adds no version.
                return plan.note(interaction, Outcome(200, current, message="unchanged"), resource)
        stored = await self._write(
            plan, resource, resource_id=resource_id, current=current, method=method
        )
        created = current is None or current.deleted
        outcome = Outcome(201 if created else 200, stored, created=created)
        return plan.note(interaction, outcome, resource)

    async def patch(
        self,
        plan: Plan,
        resource_type: str,
        resource_id: str,
        operations: Any,
        *,
        if_match: int | None,
        rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Outcome:
        """Apply a JSON Patch to the current version (``rewrite``: a transaction's ids)."""
        current = await self.store.read(resource_type, resource_id)
        if current is None or not await self._readable(plan, current):
            raise errors.not_found(f"{resource_type}/{resource_id} is not known")
        if current.body is None:
            raise errors.gone(f"{resource_type}/{resource_id} was deleted")
        patched = apply_json_patch(from_json_exact(current.body), operations)
        if patched.get("resourceType") != resource_type or patched.get("id") != resource_id:
            raise errors.unprocessable("a patch may not change resourceType or id")
        check_body(patched, resource_type)
        if if_match is not None:
            plan.pinned = True
        return await self.update(
            plan,
            rewrite(patched) if rewrite else patched,
            resource_id=resource_id,
            if_match=if_match if if_match is not None else current.version,
            method="PATCH",
            current=current,
        )

    async def conditional_update(
        self,
        plan: Plan,
        resource: dict[str, Any],
        *,
        criteria: Criteria,
        if_match: int | None = None,
    ) -> Outcome:
        resource_type = resource["resourceType"]
        plan.guard.require("search", resource_type)
        found = await self.single_match(
            plan,
            resource_type,
            criteria,
            several="the conditional update criteria match several resources",
            creates=True,
        )
        body_id = resource.get("id")
        if found is not None:
            target = found.id
            if body_id is not None and body_id != target:
                raise errors.bad_request(
                    "the id in the body differs from the matched resource", f"{resource_type}.id"
                )
        else:
            target = id_to_create(resource)
            plan.batch.claims.append(self.claim(plan, resource_type, criteria, target))
        return await self.update(
            plan, {**resource, "id": target}, resource_id=target, if_match=if_match
        )

    async def delete(
        self, plan: Plan, resource_type: str, resource_id: str, *, if_match: int | None = None
    ) -> Outcome:
        current = await self.store.read(resource_type, resource_id)
        plan.guard.require("delete", resource_type)
        if current is not None and not await self._readable(plan, current):
            current = None  # answered as the missing resource it is to this caller
        previous = from_json(current.body) if current and current.body is not None else None
        if previous is not None:
            plan.guard.require("delete", resource_type, previous)
        if if_match is not None:
            plan.pinned = True
            if current is None or current.deleted or current.version != if_match:
                raise errors.precondition_failed("If-Match does not name the current version")
        if current is None:
            raise errors.not_found(f"{resource_type}/{resource_id} does not exist")
        if current.deleted:
            return plan.note("delete", Outcome(204, current, message="already deleted"), None)
        check_change(previous or {}, None, amendment=None)
        stored = plan.add(
            VersionWrite(
                resource_type=resource_type,
                id=resource_id,
                version=current.version + 1,
                expected_version=current.version,
                last_updated=plan.now,
                method="DELETE",
                body=None,
                index=None,
                deleted=True,
            )
        )
        return plan.note("delete", Outcome(204, stored), previous)

    async def conditional_delete(
        self, plan: Plan, resource_type: str, *, criteria: Criteria
    ) -> Outcome:
        plan.guard.require("search", resource_type)
        found = await self.single_match(
            plan,
            resource_type,
            criteria,
            several="the conditional delete criteria match several resources",
        )
        if found is None:
            outcome = Outcome(204, None, message="no resource matched")
            if plan.trail is not None:
                plan.trail.add("delete", status=204, resource_type=resource_type)
            return outcome
        return await self.delete(plan, resource_type, found.id)


def id_to_create(resource: Any) -> str:
    """The id a conditional update that matched nothing creates: the body's own id when it
    is a string, else a new one (a transaction resolves references with the same rule)."""
    body_id = resource.get("id") if isinstance(resource, dict) else None
    return body_id if isinstance(body_id, str) else new_id()


def apply_json_patch(resource: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise errors.bad_request("a JSON Patch document is a JSON array of operations")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(resource)
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPatchTestFailed) as exc:
        raise errors.unprocessable("the patch does not apply to the current version") from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise errors.bad_request("malformed JSON Patch operation") from exc
    if not isinstance(patched, dict):
        raise errors.unprocessable("the patch did not produce a resource")
    return patched
