"""What an audit record's hash covers, per record layout, so that old chains still verify.

A store keeps, for every record: ``position``, ``prev_hash``, ``hash``, ``event_id``,
``recorded``, ``layout`` and the ``event`` (the AuditEvent JSON).  ``event_id`` and
``recorded`` are what the search index, the time-range export and the restore checks
read, so an edit to them must show as much as an edit to the event.

Layout 2 (every record written since issue 14) seals every stored column but the hash::

    hash = HMAC-SHA256(key, "medicore-audit-v2\\n"
                            + canonical([position, prev_hash, event_id, recorded]) + "\\n"
                            + canonical(event))

The header is a JSON array, so no choice of column text can shift a boundary between
two columns.  Layout 1 (the records written before) sealed the position, the previous
hash and the event only::

    hash = HMAC-SHA256(key, "medicore-audit-v1\\n" + position + "\\n" + prev_hash + "\\n"
                            + canonical(event))

Its ``event_id`` and ``recorded`` columns were always written as copies of the event's
``id`` and ``recorded``, so a layout-1 record is genuine only if its MAC matches *and*
those columns still equal the sealed event's fields: every column is covered either
way.  Old records are not re-sealed under layout 2: that needs the key, and would
rewrite an append-only chain (the thing an auditor must be able to rule out).

The ``layout`` column is covered too: each layout's MAC starts with its own domain
string, so a record relabelled to the other layout no longer matches its hash, and a
value that is not exactly the integer 1 or 2 (``2.0``, ``"2"``, ``true``) verifies
under no layout.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["LAYOUT", "LEGACY_LAYOUT", "columns_match", "mac"]

LEGACY_LAYOUT = 1
"""Records written before the stored columns were sealed (and where no layout is stored)."""

LAYOUT = 2
"""The layout every record is sealed with now."""

_DOMAINS = {LEGACY_LAYOUT: b"medicore-audit-v1\n", LAYOUT: b"medicore-audit-v2\n"}


def _header(layout: int, *, position: int, prev_hash: str, event_id: Any, recorded: Any) -> bytes:
    if layout == LAYOUT:
        return orjson.dumps([position, prev_hash, event_id, recorded]) + b"\n"
    return f"{position}\n{prev_hash}\n".encode()


def mac(
    layout: Any,
    canonical_event: bytes,
    *,
    key: bytes,
    position: int,
    prev_hash: str,
    event_id: str | None,
    recorded: str | None,
) -> str:
    """The hex HMAC of one record under ``layout``.

    ``ValueError`` for a layout that is not one of ours; ``TypeError`` when a column
    read back from a store is not text (both mean: not a record we sealed).
    """
    if type(layout) is not int or layout not in _DOMAINS:
        raise ValueError(f"unknown audit record layout {layout!r}")
    digest = hmac.new(key, _DOMAINS[layout], hashlib.sha256)
    digest.update(
        _header(
            layout, position=position, prev_hash=prev_hash, event_id=event_id, recorded=recorded
        )
    )
    digest.update(canonical_event)
    return digest.hexdigest()


def columns_match(event: Mapping[str, Any], *, event_id: Any, recorded: Any) -> bool:
    """Layout 1: the columns kept beside the event equal its own ``id`` and ``recorded``.

    ``None`` means the source keeps no such column (an export written before layout 2).
    """
    return (event_id is None or event.get("id") == event_id) and (
        recorded is None or event.get("recorded") == recorded
    )
