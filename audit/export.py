"""NDJSON archives of the audit chain that verify on their own, for 5-year retention.

Each line is one chained record, ``{"event":{...},"hash":..,"position":..,"prev_hash":..}``
in canonical JSON (sorted keys, no spaces, UTF-8).  An export covers the contiguous run
of positions that holds every record recorded in ``[since, until)`` (see
``audit.sink``), so the slice is a chain of its own: it starts from the first record's
``prev_hash``, which the verifier takes from the file or, to prove two archives join
up, from the previous archive's last ``hash``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from audit.chain import ChainedRecord, Checkpoint, VerifyReport, canonical_json, verify
from audit.sink import AuditSink

__all__ = [
    "ExportSummary",
    "Progress",
    "export_ndjson",
    "read_ndjson",
    "terminal_progress",
    "verify_export",
]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while exporting."""

_PROGRESS_EVERY = 500


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What was written: enough to chain the next archive onto this one."""

    count: int
    first_position: int | None
    last_position: int | None
    start_prev_hash: str | None
    last_hash: str | None


async def export_ndjson(
    sink: AuditSink,
    out: IO[bytes],
    *,
    since: datetime,
    until: datetime,
    progress: Progress | None = None,
) -> ExportSummary:
    """Writes the records covering ``[since, until)`` to ``out``, one per line."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("export since/until must be timezone-aware")
    bounds = await sink.audit_bounds(since=since, until=until)
    if bounds is None:
        if progress is not None:
            progress(0, 0)
        return ExportSummary(0, None, None, None, None)
    total = bounds[1] - bounds[0] + 1
    count = 0
    first: ChainedRecord | None = None
    last: ChainedRecord | None = None
    async for record in sink.iter_audit(start=bounds[0], stop=bounds[1]):
        out.write(canonical_json(record.to_json()) + b"\n")
        first = first or record
        last = record
        count += 1
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress(count, total)
    if progress is not None:
        progress(count, total)
    return ExportSummary(
        count=count,
        first_position=first.position if first else None,
        last_position=last.position if last else None,
        start_prev_hash=first.prev_hash if first else None,
        last_hash=last.hash if last else None,
    )


_MALFORMED = ChainedRecord(position=0, prev_hash="", hash="", event_json=b"")
"""Stands in for an unreadable line: it never matches a seal, so verify reports it."""


def read_ndjson(lines: Iterable[bytes]) -> Iterator[ChainedRecord]:
    """Records from NDJSON lines; a malformed line becomes a record that fails its seal."""
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            yield ChainedRecord.from_json(value) if isinstance(value, dict) else _MALFORMED
        except ValueError:
            yield _MALFORMED


def verify_export(
    path: Path | str,
    *,
    key: bytes,
    start_prev_hash: str | None = None,
    checkpoints: Iterable[Checkpoint] = (),
) -> VerifyReport:
    """Runs the chain check over an exported file.

    Without ``start_prev_hash`` the slice is anchored on its own first record (whose
    seal still covers that ``prev_hash``); pass the previous archive's last hash to
    also prove nothing is missing between the two files.
    """
    with open(path, "rb") as handle:
        first_line = b""
        for line in handle:
            if line.strip():
                first_line = line
                break
        if not first_line:
            return verify((), key=key)
        try:
            head = json.loads(first_line)
            start_position = int(head["position"])
            anchor = start_prev_hash if start_prev_hash is not None else str(head["prev_hash"])
        except (ValueError, KeyError, TypeError):
            start_position, anchor = 1, start_prev_hash or ""
        handle.seek(0)
        return verify(
            read_ndjson(handle),
            key=key,
            start_position=start_position,
            start_prev_hash=anchor,
            checkpoints=checkpoints,
        )


def terminal_progress(stream: IO[str], *, width: int = 40) -> Progress | None:
    """A one-line progress bar on ``stream`` if it is a terminal, else None (no output)."""
    if not stream.isatty():
        return None

    def draw(done: int, total: int) -> None:
        filled = width if total == 0 else width * done // total
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total else ""
        stream.write(f"\r[{bar}] {done}/{total}{end}")
        stream.flush()

    return draw
