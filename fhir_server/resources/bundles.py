"""batch and transaction Bundles: entry ordering, urn:uuid resolution, all-or-nothing."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.resources import errors
from fhir_server.resources.amendments import pin_targets, targets_of
from fhir_server.resources.auditing import AuditTrail
from fhir_server.resources.meta import new_id
from fhir_server.resources.planning import Outcome, Plan, check_body, check_type, id_to_create
from fhir_server.resources.requests import EntryUrl, parse_criteria, parse_entry_url, parse_etag
from fhir_server.resources.service import ResourceService
from fhir_server.resources.steps import pause_every
from fhir_server.storage.base import RecordWrite

_INTERACTION = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

# The order FHIR R4 (http.html#trules) prescribes for processing transaction entries.
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}

GetHandler = Callable[[EntryUrl], Awaitable[tuple[int, dict[str, Any] | None]]]


@dataclass
class EntryResult:
    status: int
    outcome: Outcome | None = None
    resource: dict[str, Any] | None = None  # GET answers and OperationOutcomes
    error: errors.FhirError | None = None


@dataclass
class _Entry:
    index: int
    method: str
    url: EntryUrl
    full_url: str | None
    resource: Any
    if_match: int | None
    if_none_exist: list[tuple[str, str]] | None
    target_id: str | None = None


async def _entries(bundle: dict[str, Any], *, base_url: str) -> list[_Entry]:
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise errors.bad_request("Bundle.entry must be an array", "Bundle.entry")
    parsed: list[_Entry] = []
    for i, raw in enumerate(raw_entries):
        await pause_every(i)
        where = f"Bundle.entry[{i}]"
        request = raw.get("request") if isinstance(raw, dict) else None
        if not isinstance(request, dict):
            raise errors.bad_request("each entry needs a request", f"{where}.request")
        method = str(request.get("method", "")).upper()
        if method not in _ORDER:
            raise errors.bad_request("unsupported request.method", f"{where}.request.method")
        url = request.get("url")
        if not isinstance(url, str) or not url:
            raise errors.bad_request("request.url is required", f"{where}.request.url")
        none_exist = request.get("ifNoneExist")
        if none_exist is not None and not isinstance(none_exist, str):
            raise errors.bad_request(
                "ifNoneExist is a query string", f"{where}.request.ifNoneExist"
            )
        full_url = raw.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise errors.bad_request("fullUrl is a URI string", f"{where}.fullUrl")
        parsed.append(
            _Entry(
                index=i,
                method=method,
                url=parse_entry_url(url, base_url=base_url),
                full_url=full_url,
                resource=raw.get("resource"),
                if_match=parse_etag(request.get("ifMatch"), header=f"{where}.request.ifMatch"),
                if_none_exist=parse_criteria(none_exist) if none_exist else None,
            )
        )
    return parsed


def _rewrite_references(value: Any, mapping: dict[str, str]) -> Any:
    """Replace ``urn:uuid:`` (and other fullUrl) references with the ids they resolved to."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in mapping:
                out[key] = mapping[item]
            else:
                out[key] = _rewrite_references(item, mapping)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, mapping) for item in value]
    return value


class BundleProcessor:
    def __init__(
        self,
        service: ResourceService,
        *,
        base_url: str,
        on_get: GetHandler,
        trail: AuditTrail | None = None,
    ) -> None:
        self.service = service
        self.base_url = base_url
        self.on_get = on_get
        self.trail = trail

    async def process(
        self, bundle: Any, *, records: Sequence[RecordWrite] = ()
    ) -> tuple[str, list[EntryResult]]:
        """Run a batch or transaction; ``records`` commit atomically with a transaction."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise errors.bad_request("POST to the base URL takes a Bundle", "Bundle.resourceType")
        kind = bundle.get("type")
        if kind not in ("batch", "transaction"):
            raise errors.bad_request("Bundle.type must be batch or transaction", "Bundle.type")
        entries = await _entries(bundle, base_url=self.base_url)
        if kind == "transaction":
            return "transaction-response", await self._transaction(entries, records)
        if records:
            raise ValueError("records commit only with a transaction")
        return "batch-response", [await self._batch_entry(entry) for entry in entries]

    # -- batch: each entry on its own ---------------------------------------------------------

    async def _batch_entry(self, entry: _Entry) -> EntryResult:
        if entry.method in ("GET", "HEAD"):
            return await self._get(entry)
        try:
            check_target(entry.url)
            outcome: Outcome = await self.service.run(
                lambda plan: self._plan(plan, entry, {}), trail=self.trail
            )
            return EntryResult(outcome.status, outcome=outcome)
        except errors.FhirError as exc:
            if self.trail is not None:
                self.trail.add(
                    _INTERACTION[entry.method],
                    status=exc.status,
                    resource_type=entry.url.resource_type,
                    resource_id=entry.url.resource_id,
                    description=exc.code,
                )
            return EntryResult(exc.status, error=exc)

    async def _get(self, entry: _Entry) -> EntryResult:
        try:
            check_target(entry.url)
            status, body = await self.on_get(entry.url)
        except errors.FhirError as exc:
            if self.trail is not None:  # a refused read is audited as a refused write is
                self.trail.add(
                    _get_interaction(entry.url),
                    status=exc.status,
                    resource_type=entry.url.resource_type,
                    resource_id=entry.url.resource_id,
                    description=exc.code,
                    denied=exc.status in (401, 403),
                )
            return EntryResult(exc.status, error=exc)
        return EntryResult(status, resource=body)

    # -- transaction: all or nothing -------------------------------------------------------------

    async def _transaction(
        self, entries: list[_Entry], records: Sequence[RecordWrite]
    ) -> list[EntryResult]:
        for entry in entries:  # before any look-up or access decision, as on the REST routes
            try:
                check_target(entry.url)
            except errors.FhirError as exc:
                exc.expression = (f"Bundle.entry[{entry.index}].request.url",)
                exc.diagnostics = f"entry {entry.index}: {exc.diagnostics}"
                raise
        ordered = sorted(entries, key=_transaction_order)
        seen_full_urls = [e.full_url for e in entries if e.full_url]
        if len(seen_full_urls) != len(set(seen_full_urls)):
            raise errors.bad_request("two entries share one fullUrl", "Bundle.entry.fullUrl")

        async def build(plan: Plan) -> dict[int, Outcome]:
            plan.batch.transaction = True
            plan.batch.records.extend(records)
            mapping = await self._resolve_ids(plan, ordered)
            for entry in ordered:
                if _is_provenance_write(entry):
                    provenance = _rewrite_references(entry.resource, mapping)
                    for ref in targets_of(provenance):
                        plan.amendments[ref] = provenance
            outcomes: dict[int, Outcome] = {}
            for entry in ordered:
                if entry.method in ("GET", "HEAD"):
                    continue
                try:
                    outcomes[entry.index] = await self._plan(plan, entry, mapping)
                except errors.FhirError as exc:
                    exc.expression = exc.expression or (f"Bundle.entry[{entry.index}]",)
                    exc.diagnostics = f"entry {entry.index}: {exc.diagnostics}"
                    raise
            if plan.trail is not None:
                plan.trail.add("transaction", status=200)
            return outcomes

        outcomes: dict[int, Outcome] = await self.service.run(build, trail=self.trail)
        results: dict[int, EntryResult] = {
            index: EntryResult(outcome.status, outcome=outcome)
            for index, outcome in outcomes.items()
        }
        for entry in ordered:
            if entry.method in ("GET", "HEAD"):
                results[entry.index] = await self._get(entry)
        return [results[entry.index] for entry in entries]

    async def _resolve_ids(self, plan: Plan, ordered: list[_Entry]) -> dict[str, str]:
        """Decide the id each POST/PUT entry will have, so references can be rewritten."""
        mapping: dict[str, str] = {}
        planner = self.service.planner
        for i, entry in enumerate(ordered):
            await pause_every(i)
            rtype = entry.url.resource_type
            entry.target_id = None
            at = f"entry {entry.index}: "
            if entry.method == "POST" and rtype:
                entry.target_id = new_id()
                if entry.if_none_exist:
                    found = await planner.single_match(
                        plan,
                        rtype,
                        entry.if_none_exist,
                        several=at + "ifNoneExist matches several resources",
                        creates=True,
                    )
                    if found is not None:
                        entry.target_id = found.id
            elif entry.method == "PATCH" and rtype:
                entry.target_id = entry.url.resource_id
                if entry.target_id is None and entry.url.query is not None:
                    found = await planner.single_match(
                        plan,
                        rtype,
                        parse_criteria(entry.url.query),
                        several=at + "conditional patch matches several resources",
                    )
                    if found is None:
                        raise errors.not_found(at + "no resource to patch")
                    entry.target_id = found.id
            elif entry.method == "PUT" and rtype:
                if entry.url.resource_id:
                    entry.target_id = entry.url.resource_id
                elif entry.url.query is not None:
                    found = await planner.single_match(
                        plan,
                        rtype,
                        parse_criteria(entry.url.query),
                        several=at + "conditional update matches several resources",
                        creates=True,
                    )
                    entry.target_id = found.id if found else id_to_create(entry.resource)
            if entry.full_url and entry.target_id and rtype:
                mapping[entry.full_url] = f"{rtype}/{entry.target_id}"
        return mapping

    async def _plan(self, plan: Plan, entry: _Entry, mapping: dict[str, str]) -> Outcome:
        planner = self.service.planner
        rtype = entry.url.resource_type
        if rtype is None:
            raise errors.bad_request(
                "the entry URL names no resource type", "Bundle.entry.request.url"
            )
        check_type(rtype, writable=True)
        if entry.method == "DELETE":
            if entry.url.resource_id:
                return await planner.delete(
                    plan, rtype, entry.url.resource_id, if_match=entry.if_match
                )
            return await planner.conditional_delete(
                plan, rtype, criteria=parse_criteria(entry.url.query or "")
            )
        if entry.method == "PATCH":
            target = entry.target_id or entry.url.resource_id
            if target is None:
                # A batch entry: resolve the conditional URL on its own.
                await self._resolve_ids(plan, [entry])
                target = entry.target_id
            if target is None:
                raise errors.bad_request(
                    "PATCH entries need Type/id or Type?criteria", "Bundle.entry.request.url"
                )
            return await planner.patch(
                plan,
                rtype,
                target,
                _patch_operations(entry.resource),
                if_match=entry.if_match,
                rewrite=lambda patched: _rewrite_references(patched, mapping),
            )
        body = _rewrite_references(check_body(entry.resource, rtype), mapping)
        if rtype == "Provenance":
            body = pin_targets(body, plan.versions)
        if entry.method == "POST":
            body = {k: v for k, v in body.items() if k != "id"}
            return await planner.create(
                plan, body, if_none_exist=entry.if_none_exist, resource_id=entry.target_id
            )
        if entry.url.resource_id:
            return await planner.update(
                plan, body, resource_id=entry.url.resource_id, if_match=entry.if_match
            )
        return await planner.conditional_update(
            plan,
            {**body, "id": entry.target_id} if entry.target_id else body,
            criteria=parse_criteria(entry.url.query or ""),
            if_match=entry.if_match,
        )


def check_target(url: EntryUrl) -> None:
    """An entry naming a type the server does not have, or an operation, is a 404
    not-supported to every caller, before any access decision (as on the REST routes)."""
    if url.operation is not None:
        raise errors.unsupported_target(url.operation)
    if url.resource_type is not None:
        check_type(url.resource_type, writable=False)


def _get_interaction(url: EntryUrl) -> str:
    if url.operation is not None:
        return "operation"
    if url.history:
        kind = "instance" if url.resource_id else "type" if url.resource_type else "system"
        return f"history-{kind}"
    if url.resource_id:
        return "vread" if url.version else "read"
    return "search"


def _is_provenance_write(entry: _Entry) -> bool:
    return (
        entry.url.resource_type == "Provenance"
        and entry.method in ("POST", "PUT")
        and isinstance(entry.resource, dict)
    )


def _transaction_order(entry: _Entry) -> tuple[float, int]:
    """The spec's order, except that Provenance entries are planned after the other
    writes, so that they can point at the exact versions this transaction creates."""
    rank: float = 2.5 if _is_provenance_write(entry) else _ORDER[entry.method]
    return rank, entry.index


def _patch_operations(resource: Any) -> Any:
    """A PATCH entry carries its JSON Patch as a Binary resource (base64 data)."""
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        data = resource.get("data", "")
        try:
            if not isinstance(data, str):
                raise ValueError("Binary.data is base64 text")
            return orjson.loads(base64.b64decode(data, validate=True))
        except ValueError as exc:  # bad base64 and bad JSON alike
            raise errors.bad_request(
                "the Binary patch is not base64-encoded JSON", "Bundle.entry.resource.data"
            ) from exc
    if isinstance(resource, list):
        return resource
    raise errors.bad_request(
        "PATCH entries carry a JSON Patch in a Binary", "Bundle.entry.resource"
    )
