"""A keyed hash chain over audit records, so nobody without the key edits them unnoticed.

Each record ``n`` carries ``position`` (1, 2, 3, ...), ``prev_hash`` (the ``hash`` of
record ``n-1``, or :data:`GENESIS` for record 1), ``hash``, the columns a store keeps
beside the event (``event_id``, ``recorded``) and its ``layout``.  The hash is an
HMAC-SHA256 over every one of them but itself (``audit.layout`` gives the exact
material of layout 2, and of layout 1, which older records keep)::

    hash = HMAC-SHA256(key, "medicore-audit-v2\\n"
                            + canonical([position, prev_hash, event_id, recorded]) + "\\n"
                            + canonical(event))

where ``canonical`` is JSON with sorted keys, no spaces, UTF-8 (not ``\\u`` escaped), so
a store may keep the event as text or as a document and still verify.  Binding the
position and the previous hash into the MAC makes every record vouch for its place.

What :func:`verify` detects, walking the records in position order:

- **altered**: any change to a record's event, position, prev_hash, hash, event_id,
  recorded or layout.
- **removed**: a record missing from the middle (a gap in positions, or a genuine record
  whose ``prev_hash`` points at a record that is no longer there), also when the
  following records were renumbered to hide the gap.
- **inserted**: a forged record wedged in (the next genuine record still links to the
  one before it), or a copy of an earlier genuine record replayed later.
- **reordered**: two genuine records swapped.
- **unlinked**: a genuine record that does not follow the one before it, e.g. an
  exported slice checked from the wrong starting ``prev_hash``.

Only the first break is reported (everything after it is suspect anyway), with its
position in the sequence and a PHI-free detail, never the event's content.

What the chain alone **cannot** detect:

- **Truncation of the newest records.**  Deleting records ``k..n`` leaves ``1..k-1`` a
  perfectly valid chain.  Only a :class:`Checkpoint` (position + head hash) that was
  shipped off the machine before the deletion reveals it: :func:`verify` with
  ``checkpoints=`` reports ``truncated`` when the chain ends before a checkpoint, and
  ``altered`` when the record at a checkpoint's position has another hash.  Ship
  checkpoints often (e.g. every minute to a WORM bucket or a syslog host): the window
  between two checkpoints is the window in which the tail can vanish unnoticed.
- **A rewrite by someone who holds the key.**  Whoever can read the server secret can
  re-seal a whole altered chain.  Checkpoints held elsewhere still expose any rewrite
  of records at or before their position; keep the key out of the database and its
  backups, and away from database administrators.
- **Records that never reached the chain** (the server is responsible for writing the
  audit record in the same commit as the access, issue 6).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from audit.layout import LAYOUT, LEGACY_LAYOUT, columns_match, mac
from audit.records import (
    EMPTY_HEAD,
    GENESIS,
    ChainedRecord,
    ChainHead,
    canonical_json,
    parsed_event,
    seal,
    seal_batch,
)

__all__ = [
    "EMPTY_HEAD",
    "GENESIS",
    "LAYOUT",
    "LEGACY_LAYOUT",
    "ChainHead",
    "ChainProblem",
    "ChainedRecord",
    "Checkpoint",
    "VerifyReport",
    "canonical_json",
    "checkpoint",
    "seal",
    "seal_batch",
    "verify",
]

_SEARCH_WINDOW = 8
"""How far from the expected position a record whose seal fails is tried, to tell a
renumbered or swapped genuine record from a forged one."""

ProblemKind = Literal["altered", "removed", "inserted", "reordered", "unlinked", "truncated"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Position + head hash taken at ``taken_at``, to be kept off the machine."""

    position: int
    hash: str
    taken_at: str

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "hash": self.hash, "taken_at": self.taken_at}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Checkpoint:
        if not isinstance(value.get("position"), int) or not isinstance(value.get("hash"), str):
            raise ValueError("checkpoint needs an integer 'position' and a string 'hash'")
        return cls(
            position=value["position"], hash=value["hash"], taken_at=str(value.get("taken_at", ""))
        )


def checkpoint(head: ChainHead, *, taken_at: datetime) -> Checkpoint:
    """A checkpoint of ``head`` (from ``AuditSink.head()`` or a verify report)."""
    if taken_at.tzinfo is None:
        raise ValueError("checkpoint taken_at must be timezone-aware")
    return Checkpoint(position=head.position, hash=head.hash, taken_at=taken_at.isoformat())


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first break found: what kind, at which position, in PHI-free words."""

    kind: ProblemKind
    position: int
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :func:`verify`; ``head`` is the last record that checked out."""

    checked: int
    head: ChainHead
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if self.problem is None:
            return f"audit chain OK: {self.checked} records, head at position {self.head.position}"
        p = self.problem
        return f"audit chain BROKEN at position {p.position} ({p.kind}): {p.detail}"


class _Walker:
    """Streaming chain check with one record of lookahead."""

    def __init__(self, *, key: bytes, start_position: int, start_prev_hash: str) -> None:
        self.key = key
        self.expected = start_position
        self.prev = start_prev_hash
        self.checked = 0
        self._last: tuple[ChainedRecord, Any, bytes | None] | None = None

    def _body(self, record: ChainedRecord) -> tuple[Any, bytes | None]:
        """Parsed and canonical event, cached for the record seen last (lookahead reuses it)."""
        if self._last is not None and self._last[0] is record:
            return self._last[1], self._last[2]
        value: Any = None
        body: bytes | None = None
        try:
            value = parsed_event(record.event_json)
            body = canonical_json(value)
        except (ValueError, TypeError, UnicodeDecodeError):
            value, body = None, None
        self._last = (record, value, body)
        return value, body

    def sealed_at(self, record: ChainedRecord, position: int) -> bool:
        """Whether the hash is the MAC of the record's stored columns at ``position``."""
        _, body = self._body(record)
        if body is None or position < 1 or not isinstance(record.hash, str):
            return False
        try:
            digest = mac(
                record.layout,
                body,
                key=self.key,
                position=position,
                prev_hash=record.prev_hash,
                event_id=record.event_id,
                recorded=record.recorded,
            )
        except (ValueError, TypeError, UnicodeError):  # not a layout or column we write
            return False
        return hmac.compare_digest(digest.encode("ascii"), record.hash.encode("utf-8"))

    def columns_agree(self, record: ChainedRecord) -> bool:
        """Layout 1 seals the event only: its copies beside it must still equal it."""
        if record.layout != LEGACY_LAYOUT:
            return True
        value, _ = self._body(record)
        return isinstance(value, dict) and columns_match(
            value, event_id=record.event_id, recorded=record.recorded
        )

    def genuine_at(self, record: ChainedRecord, position: int) -> bool:
        return self.sealed_at(record, position) and self.columns_agree(record)

    def why_altered(self, record: ChainedRecord) -> str:
        """A PHI-free reason for a record that is genuine nowhere near its place."""
        if type(record.layout) is not int or record.layout not in (LEGACY_LAYOUT, LAYOUT):
            return "record layout is not one this server writes"
        if self.sealed_at(record, record.position) and not self.columns_agree(record):
            return "event_id or recorded column differs from the sealed event"
        return "record does not match its hash"

    def true_position(self, record: ChainedRecord) -> int | None:
        """The position ``record`` was sealed for, if near where we are; None if forged."""
        if self.genuine_at(record, record.position):
            return record.position
        low = max(1, self.expected - _SEARCH_WINDOW)
        for candidate in range(low, self.expected + _SEARCH_WINDOW + 1):
            if candidate != record.position and self.genuine_at(record, candidate):
                return candidate
        return None

    def step(self, record: ChainedRecord, nxt: ChainedRecord | None) -> ChainProblem | None:
        true_pos = self.true_position(record)
        expected = self.expected
        if true_pos == expected and record.prev_hash == self.prev:
            if record.position != expected:
                return ChainProblem("altered", expected, "position field was changed")
            self.prev = record.hash
            self.expected += 1
            self.checked += 1
            return None
        if true_pos is None:
            if nxt is not None and self._links_here(nxt):
                return ChainProblem(
                    "inserted",
                    expected,
                    f"a record that is not part of the chain sits before record {expected}",
                )
            return ChainProblem("altered", expected, self.why_altered(record))
        if true_pos > expected:
            if nxt is not None and self._links_here(nxt):
                return ChainProblem(
                    "reordered",
                    expected,
                    f"record {true_pos} appears before record {expected}",
                )
            missing = true_pos - expected
            return ChainProblem(
                "removed",
                expected,
                f"{missing} record(s) missing before position {true_pos}"
                if missing > 1
                else f"record {expected} is missing",
            )
        if true_pos < expected:
            return ChainProblem("inserted", expected, f"a copy of record {true_pos} appears again")
        return ChainProblem(
            "unlinked",
            expected,
            "record does not link to the one before it (prev_hash differs)",
        )

    def _links_here(self, record: ChainedRecord) -> bool:
        return record.prev_hash == self.prev and self.true_position(record) == self.expected


def _pairs(
    records: Iterable[ChainedRecord],
) -> Iterator[tuple[ChainedRecord, ChainedRecord | None]]:
    iterator = iter(records)
    current = next(iterator, None)
    while current is not None:
        following = next(iterator, None)
        yield current, following
        current = following


def verify(
    records: Iterable[ChainedRecord],
    *,
    key: bytes,
    start_position: int = 1,
    start_prev_hash: str = GENESIS,
    checkpoints: Iterable[Checkpoint] = (),
) -> VerifyReport:
    """Walks ``records`` (position order) and reports the first break, if any.

    An exported slice verifies with ``start_position``/``start_prev_hash`` set to where
    it starts (see ``audit.export``).  ``checkpoints`` taken earlier reveal truncation
    of the newest records and rewrites by a key holder (see the module docstring).
    """
    walker = _Walker(key=key, start_position=start_position, start_prev_hash=start_prev_hash)
    marks = {c.position: c for c in checkpoints}
    for record, nxt in _pairs(records):
        problem = walker.step(record, nxt)
        if problem is not None:
            return VerifyReport(
                walker.checked, ChainHead(walker.expected - 1, walker.prev), problem
            )
        mark = marks.get(record.position)
        if mark is not None and mark.hash != record.hash:
            return VerifyReport(
                walker.checked - 1,
                ChainHead(record.position - 1, record.prev_hash),
                ChainProblem(
                    "altered",
                    record.position,
                    f"hash differs from the checkpoint taken at {mark.taken_at}",
                ),
            )
    head = ChainHead(walker.expected - 1, walker.prev)
    beyond = [c for c in marks.values() if c.position > head.position]
    if beyond:
        newest = max(beyond, key=lambda c: c.position)
        return VerifyReport(
            walker.checked,
            head,
            ChainProblem(
                "truncated",
                head.position + 1,
                f"chain ends at position {head.position} but a checkpoint taken at "
                f"{newest.taken_at} saw position {newest.position}",
            ),
        )
    return VerifyReport(walker.checked, head, None)
