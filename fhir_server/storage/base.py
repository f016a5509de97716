"""The one storage contract both adapters fulfil (SQLite embedded, MongoDB in production).

Exceptions raised by any adapter (lower-layer driver errors never escape ``storage/``)::

    StoreError
     ├── StoreUnavailable      the database cannot be reached or refused the write (-> 503)
     │    └── StoreFull        no space left for the write (-> 507; reads keep working)
     ├── VersionConflict       a write expected another current version (-> 409/412, or retry)
     ├── RecordExists          an insert-only record write found its key taken
     └── ConditionalConflict   a conditional-create claim was taken concurrently (-> retry)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from audit.chain import ChainHead
from fhir_server.digits import non_negative_int

if TYPE_CHECKING:
    from fhir_server.search.extract import IndexEntries
    from fhir_server.search.query import SearchQuery
    from fhir_server.search.registry import SearchRegistry


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The database is down, unreachable or refused to make the write durable."""


class StoreFull(StoreUnavailable):
    """The database (or its disk) has no room for the write; freeing space ends it."""


class AtomicityUnavailable(StoreError):
    """The batch changes several things at once and the store cannot make that atomic
    (MongoDB without transactions: a standalone server rather than a replica set)."""


class VersionConflict(StoreError):
    """The current version is not the one the write was planned against."""

    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(f"version conflict on {resource_type}/{resource_id}")
        self.resource_type = resource_type
        self.resource_id = resource_id


class RecordExists(StoreError):
    """An ``if_absent`` record write found its key already present."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"record {kind} already exists")
        self.kind = kind
        self.key = key


class RecordChanged(StoreError):
    """An ``expect`` record write found the record changed (or gone) since it was read."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"record {kind} changed meanwhile")
        self.kind = kind
        self.key = key


class ConditionalConflict(StoreError):
    """Another resource now matches a conditional-create criteria; re-plan the request."""


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of a resource as stored: ``body`` is its JSON text, meta included."""

    resource_type: str
    id: str
    version: int
    last_updated: str  # FHIR instant, UTC, e.g. 2026-11-26T15:40:00.123456+00:00
    deleted: bool
    body: bytes | None  # None for a deletion tombstone
    method: str = "PUT"  # POST, PUT, PATCH or DELETE: the interaction that wrote the version


@dataclass(slots=True)
class VersionWrite:
    """A new version of one resource; ``expected_version`` 0 means "must not exist yet"."""

    resource_type: str
    id: str
    version: int
    expected_version: int
    last_updated: str
    method: str
    body: bytes | None  # None when ``deleted``
    index: IndexEntries | None  # None when ``deleted``
    deleted: bool = False


@dataclass(slots=True)
class ConditionalClaim:
    """Guarantees at commit time that no *other* current resource matches ``query``.

    ``key`` is the normalized criteria (type + sorted parameters): stores that cannot
    re-run the query inside the commit serialize on it with a unique index.
    """

    key: str
    query: SearchQuery
    resource_type: str
    id: str


@dataclass(slots=True)
class RecordWrite:
    """A server-side record (HL7 inbox, users, clients, tokens...) keyed by (kind, key).

    Records are JSON documents outside the FHIR resource space; they commit in the same
    batch as resources, so e.g. an HL7 message's status changes with the data it wrote.
    """

    kind: str
    key: str
    doc: dict[str, Any] | None  # None deletes the record
    if_absent: bool = False  # insert only: RecordExists if the key is taken
    #: Compare-and-set: the stored document's fields must still have these values (else
    #: RecordChanged and nothing of the batch commits), so that of two processes acting
    #: on what they both read, one wins.
    expect: dict[str, Any] | None = None


@dataclass(slots=True)
class WriteBatch:
    """Everything one request (or one transaction Bundle) writes: all of it or none."""

    writes: list[VersionWrite] = field(default_factory=list)
    claims: list[ConditionalClaim] = field(default_factory=list)
    records: list[RecordWrite] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: A transaction Bundle (or an HL7 message, committed as one): a store that cannot
    #: make several changes atomic across a crash refuses it rather than half-apply it.
    transaction: bool = False


@dataclass(slots=True)
class HistoryPage:
    entries: list[StoredResource]
    next_cursor: str | None


@dataclass(slots=True)
class SearchResult:
    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None


class Store(Protocol):
    """Async storage contract; every method may raise ``StoreUnavailable``."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers and accepts writes."""

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version (possibly a deletion tombstone), or None if never written."""

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredResource | None: ...

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
        """Versions newest first; ``cursor`` comes from a previous page's ``next_cursor``;
        ``types``: only versions of these types (None: any)."""

    async def search(self, query: SearchQuery) -> SearchResult: ...

    async def count_matches(self, query: SearchQuery, *, limit: int) -> list[StoredResource]:
        """Up to ``limit`` current resources matching ``query`` (conditional interactions)."""

    async def commit(self, batch: WriteBatch) -> None:
        """Apply the whole batch atomically or raise; durable when it returns."""

    async def counts(self) -> dict[str, int]:
        """Current (not deleted) resources per type."""

    async def index_audit(
        self, *, registry: SearchRegistry, limit: int = 1000, upto: int | None = None
    ) -> int:
        """Make recorded AuditEvents searchable as resources (those up to chain position
        ``upto`` only, if given); how many were indexed."""

    async def audit_head(self) -> ChainHead:
        """The newest audit record's position and hash (``EMPTY_HEAD`` when none)."""

    async def audit_backlog(self) -> int:
        """Recorded AuditEvents not searchable yet (the indexer's lag)."""

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None: ...

    async def find_records(
        self,
        kind: str,
        *,
        where: dict[str, str | int | bool] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Records of ``kind`` whose top-level fields equal ``where``, by key order."""

    async def count_records(
        self, kind: str, *, where: dict[str, str | int | bool] | None = None
    ) -> int: ...


def record_field(name: str) -> str:
    """A ``where`` field of ``find_records``: a plain top-level name on both stores (no
    path or operator syntax of either: ``.``, ``$``, quotes)."""
    if not (name.isascii() and name.replace("_", "").isalnum()):
        raise ValueError("record filter fields are plain names")
    return name


_MAX_INT64 = 2**63 - 1


def decode_history_cursor(cursor: str) -> int:
    """The history position a ``next_cursor`` stands for; StoreError (a 400) otherwise."""
    position = non_negative_int(cursor, limit=_MAX_INT64 + 1)
    if position is None or position > _MAX_INT64:
        raise StoreError("malformed history cursor")
    return position
