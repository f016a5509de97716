"""The store-neutral search query each storage adapter compiles (SQL / MongoDB filter)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from typing import Any

from fhir_server.search.errors import SearchError

# Criterion.kind values
TOKEN, TEXT, STRING, DATE, NUMBER, REFERENCE, URI = (
    "token",
    "text",
    "string",
    "date",
    "number",
    "reference",
    "uri",
)
COMPOSITE, ID, MISSING, CHAIN, HAS = "composite", "id", "missing", "chain", "has"
# Combinators access rules are built of (``search.access``); the parser never makes them.
# ALL: values are criteria, all must hold. ANY: values are alternatives (tuples of
# criteria AND-ed), one must hold; no alternative matches nothing. TYPE: values are types.
ALL, ANY, TYPE = "all", "any", "type"

# Result parameters: they shape the answer, never select resources.
RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_total", "_summary", "_elements", "_cursor"}
)
_SCALARS = (str, int, float, type(None))
# Both stores: the most resources one page may include (_include/_revinclude), and the
# highest code point, which ends a prefix range ("ab" <= x < "ab" + MAX_CHAR).
MAX_INCLUDED = 1000
MAX_CHAR = "\U0010ffff"


def _scalar(value: Any) -> bool:
    """A value SQLite and MongoDB both bind (integers within 64 bits)."""
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, _SCALARS)


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``system`` None: any system; "" : no system. ``code`` None: any code (``system|``)."""

    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class StringValue:
    mode: str  # "start" (folded prefix), "exact", "contains" (folded substring)
    value: str


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str
    low: int  # inclusive ms range the search value stands for
    high: int
    margin: int = 0  # ap: how far "approximately" reaches, fixed when the query was parsed


@dataclass(frozen=True, slots=True)
class NumberValue:
    prefix: str
    value: float
    low: float  # half-open precision interval [low, high)
    high: float
    system: str | None = None  # quantity unit system/code; None = any
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """``type`` None: any type; "" : ``id`` holds an absolute or canonical URL."""

    type: str | None
    id: str


@dataclass(frozen=True, slots=True)
class UriValue:
    mode: str  # "eq", "below", "above"
    value: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    first: TokenValue
    second: Any  # TokenValue | NumberValue | DateValue | StringValue
    second_kind: str


@dataclass(frozen=True, slots=True)
class ChainValue:
    """Matches resources whose ``param`` reference points at a target matching ``inner``."""

    targets: tuple[tuple[str, Criterion], ...]


@dataclass(frozen=True, slots=True)
class HasValue:
    """Matches resources referenced through ``ref_param`` by a ``source_type`` matching."""

    source_type: str
    ref_param: str
    inner: Criterion


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence: ``values`` are OR-ed, criteria are AND-ed."""

    param: str  # index parameter name (may end in :identifier, :of-type, :canonical)
    kind: str
    values: tuple[Any, ...]
    negate: bool = False  # token :not, and ``ne`` handled per value


@dataclass(frozen=True, slots=True)
class SortKey:
    param: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Include:
    source_type: str  # "*" for any
    param: str  # "*" for every reference parameter
    target_type: str | None = None
    iterate: bool = False
    reachable: tuple[str, ...] = ()  # types the parameter can point at; () for any
    access: Criterion | None = None  # what an included row must meet (the caller's rules)

    def may_reach(self, resource_type: str) -> bool:
        if self.target_type is not None:
            return self.target_type == resource_type
        return not self.reachable or resource_type in self.reachable


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position: sort values and the store's tie-breaker of a boundary row."""

    direction: str  # "next" (after the row) or "prev" (before it)
    values: tuple[Any, ...]
    last: Any

    def encode(self) -> str:
        raw = json.dumps([self.direction, list(self.values), self.last], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            direction, values, last = json.loads(raw)
            if direction not in ("next", "prev") or not isinstance(values, list):
                raise ValueError(direction)
            if not all(_scalar(v) for v in (*values, last)):
                raise ValueError("cursor values are scalars both stores can bind")
        except (ValueError, TypeError) as exc:
            raise SearchError("_cursor", "malformed paging cursor") from exc
        return cls(direction=direction, values=tuple(values), last=last)


@dataclass(slots=True)
class SearchQuery:
    """A parsed search; ``params`` is the normalized parameter list used for links."""

    resource_types: tuple[str, ...]
    criteria: tuple[Criterion, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    cursor: Cursor | None = None
    include: tuple[Include, ...] = ()
    revinclude: tuple[Include, ...] = ()
    total: str | None = None  # None (server default), "none", "estimate", "accurate"
    summary: str | None = None  # "true", "text", "data", "count", "false"
    elements: tuple[str, ...] = ()
    ignored: list[str] = field(default_factory=list)
    params: tuple[tuple[str, str], ...] = ()

    @property
    def resource_type(self) -> str | None:
        return self.resource_types[0] if len(self.resource_types) == 1 else None

    @property
    def page_size(self) -> int:
        """Matches per page: ``_summary=count`` asks for none."""
        return 0 if self.summary == "count" else self.count

    @property
    def counts_total(self) -> bool:
        """Whether the store must count every match (the client asked for the number)."""
        return self.summary == "count" or self.total in ("accurate", "estimate")

    def free_total(self, matched: int) -> int | None:
        """The total when an uncounted first page holds every match, else None.

        Counting a broad match costs a scan of every hit; clients that need the number
        ask with ``_total=accurate`` (or ``_summary=count``).
        """
        page = self.page_size
        if self.total is None and self.cursor is None and page and matched < page:
            return matched
        return None

    def involves(self, resource_type: str) -> bool:
        """Whether answering reads rows of ``resource_type``: searched or included, or
        reached through a chain or ``_has``."""
        return (
            resource_type in self.resource_types
            or any(inc.may_reach(resource_type) for inc in self.include)
            or any(inc.source_type in (resource_type, "*") for inc in self.revinclude)
            or any(reaches(c, resource_type) for c in self.criteria)
        )

    def key(self) -> str:
        """Normalized criteria (type + sorted parameters), e.g. for conditional claims."""
        parts = sorted(f"{k}={v}" for k, v in self.params if k.split(":")[0] not in RESULT_PARAMS)
        return ",".join(self.resource_types) + "?" + "&".join(parts)


def without_type(criterion: Criterion, resource_type: str) -> Criterion | None:
    """``criterion`` with its chains no longer reaching ``resource_type`` (an untyped chain
    keeps its other targets); None when it cannot do without it: a chain to that type only,
    or ``_has`` from it."""
    if criterion.kind == CHAIN:
        kept: list[tuple[str, Criterion]] = []
        for target, inner in criterion.values[0].targets:
            narrowed = None if target == resource_type else without_type(inner, resource_type)
            if narrowed is not None:
                kept.append((target, narrowed))
        return replace(criterion, values=(ChainValue(tuple(kept)),)) if kept else None
    if criterion.kind == HAS:
        has: HasValue = criterion.values[0]
        inner = None if has.source_type == resource_type else without_type(has.inner, resource_type)
        return None if inner is None else replace(criterion, values=(replace(has, inner=inner),))
    return criterion


def reaches(criterion: Criterion, resource_type: str) -> bool:
    """Whether a chain or ``_has`` in ``criterion`` reads rows of ``resource_type``."""
    if criterion.kind == CHAIN:
        return any(
            target == resource_type or reaches(inner, resource_type)
            for target, inner in criterion.values[0].targets
        )
    if criterion.kind == HAS:
        has: HasValue = criterion.values[0]
        return has.source_type == resource_type or reaches(has.inner, resource_type)
    if criterion.kind == ALL:
        return any(reaches(c, resource_type) for c in criterion.values)
    if criterion.kind == ANY:
        return any(reaches(c, resource_type) for alt in criterion.values for c in alt)
    return False
