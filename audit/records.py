"""Audit records as a store keeps them, and sealing them onto the chain (``audit.chain``).

``seal_batch`` is what a store calls inside its commit; ``audit.layout`` says what each
record's hash covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audit.layout import LAYOUT, LEGACY_LAYOUT, mac

__all__ = [
    "EMPTY_HEAD",
    "GENESIS",
    "ChainHead",
    "ChainedRecord",
    "canonical_json",
    "parsed_event",
    "seal",
    "seal_batch",
]

GENESIS = "0" * 64
"""``prev_hash`` of record 1: no record precedes it."""


def canonical_json(event: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per JSON value.

    Byte-identical to ``json.dumps(v, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()`` for FHIR JSON (strings, integers, booleans, no
    floats), ten times faster: this runs for every audited request.
    """
    try:
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise ValueError("audit event is not JSON-serializable") from exc


def parsed_event(event_json: bytes) -> Any:
    """The stored event JSON as a value; `ValueError` (not a decode error) when unreadable."""
    try:
        return orjson.loads(event_json)
    except orjson.JSONDecodeError as exc:
        raise ValueError("audit event is not valid JSON") from exc


def _column(event: Any, name: str) -> str | None:
    value = event.get(name) if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


def seal(
    event_json: bytes, *, prev_hash: str, key: bytes, position: int, layout: int = LAYOUT
) -> str:
    """The chain hash of one record (hex); ``event_json`` is canonicalized first.

    The ``event_id`` and ``recorded`` columns sealed are the event's own, as the stores
    write them.
    """
    if position < 1:
        raise ValueError("audit chain positions start at 1")
    if not key:
        raise ValueError("audit chain key must not be empty")
    value = parsed_event(event_json)
    return mac(
        layout,
        canonical_json(value),
        key=key,
        position=position,
        prev_hash=prev_hash,
        event_id=_column(value, "id"),
        recorded=_column(value, "recorded"),
    )


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """One stored audit record: the AuditEvent JSON, the columns beside it, its place.

    ``event_id`` and ``recorded`` are the stored columns as read back (``None``: the
    source keeps none, e.g. an export written before layout 2); ``layout`` says which
    rule sealed the record (``audit.layout``).
    """

    position: int
    prev_hash: str
    hash: str
    event_json: bytes
    event_id: str | None = None
    recorded: str | None = None
    layout: int = LEGACY_LAYOUT

    def event(self) -> dict[str, Any]:
        value = orjson.loads(self.event_json)
        if not isinstance(value, dict):
            raise ValueError("audit record event is not a JSON object")
        return value

    def recorded_instant(self) -> str:
        """The ``recorded`` instant (FHIR instant text): the column, else the event's."""
        if self.recorded is not None:
            return self.recorded
        return str(self.event().get("recorded", ""))

    def to_json(self) -> dict[str, Any]:
        """The record as one JSON object (an NDJSON export line): every stored column."""
        out: dict[str, Any] = {
            "position": self.position,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "layout": self.layout,
            "event": self.event(),
        }
        for name in ("event_id", "recorded"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ChainedRecord:
        """Inverse of :meth:`to_json`; raises ``ValueError`` naming the field at fault.

        A line without ``layout`` (exports written before layout 2) is a layout-1 record.
        """
        for name, kind in (("position", int), ("prev_hash", str), ("hash", str)):
            if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
                raise ValueError(f"audit record field '{name}' is missing or not a {kind.__name__}")
        if not isinstance(value.get("event"), dict):
            raise ValueError("audit record field 'event' is missing or not an object")
        layout = value.get("layout", LEGACY_LAYOUT)
        if type(layout) is not int:
            raise ValueError("audit record field 'layout' is not an int")
        for name in ("event_id", "recorded"):
            if not isinstance(value.get(name), str | None):
                raise ValueError(f"audit record field '{name}' is not a str")
        return cls(
            position=value["position"],
            prev_hash=value["prev_hash"],
            hash=value["hash"],
            event_json=canonical_json(value["event"]),
            event_id=value.get("event_id"),
            recorded=value.get("recorded"),
            layout=layout,
        )


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest record's position and hash; ``(0, GENESIS)`` for an empty chain."""

    position: int
    hash: str


EMPTY_HEAD = ChainHead(position=0, hash=GENESIS)


def seal_batch(events: Sequence[Any], *, head: ChainHead, key: bytes) -> list[ChainedRecord]:
    """Chains ``events`` (dicts or JSON bytes) after ``head``, ready to append in one commit."""
    records: list[ChainedRecord] = []
    prev, position = head.hash, head.position
    for event in events:
        value = parsed_event(event) if isinstance(event, bytes) else event
        body = canonical_json(value)
        event_id, recorded = _column(value, "id"), _column(value, "recorded")
        position += 1
        digest = mac(
            LAYOUT,
            body,
            key=key,
            position=position,
            prev_hash=prev,
            event_id=event_id,
            recorded=recorded,
        )
        records.append(
            ChainedRecord(
                position=position,
                prev_hash=prev,
                hash=digest,
                event_json=body,
                event_id=event_id,
                recorded=recorded,
                layout=LAYOUT,
            )
        )
        prev = digest
    return records
