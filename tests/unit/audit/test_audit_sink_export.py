"""The in-memory chain reads as a store's does; exports verify on their own."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.chain import EMPTY_HEAD, ChainHead, checkpoint, seal_batch, verify
from audit.export import export_ndjson, read_ndjson, terminal_progress, verify_export
from audit.sink import AuditSink, InMemoryAuditSink

KEY = b"sink-export-test-key"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def event(minute: int, n: int = 0) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "id": f"ev-{minute}-{n}",
        "recorded": f"2026-03-01T08:{minute:02d}:00.000000Z",
    }


async def filled_sink(minutes: list[int]) -> InMemoryAuditSink:
    """One record per minute given, sealed in that order (as a store's commits would)."""
    events = [event(minute, n) for n, minute in enumerate(minutes)]
    return InMemoryAuditSink(seal_batch(events, head=EMPTY_HEAD, key=KEY))


async def collect(sink: AuditSink, **kwargs: Any) -> list[int]:
    return [r.position async for r in sink.iter_audit(**kwargs)]


def test_in_memory_sink_satisfies_protocol() -> None:
    sink: AuditSink = InMemoryAuditSink()
    assert isinstance(sink, AuditSink)


async def test_append_and_iterate_in_order() -> None:
    sink = await filled_sink(list(range(6)))
    assert await sink.audit_head() == ChainHead(6, sink.records[-1].hash)
    assert await collect(sink) == [1, 2, 3, 4, 5, 6]
    assert await collect(sink, start=3, stop=4) == [3, 4]
    assert await collect(sink, start=5) == [5, 6]
    assert verify(sink.records, key=KEY).ok


async def test_empty_sink_head_is_genesis() -> None:
    assert await InMemoryAuditSink().audit_head() == EMPTY_HEAD


async def test_time_range_is_a_contiguous_run() -> None:
    # Record 3 was stamped earlier than record 2 (two workers racing).
    sink = await filled_sink([0, 5, 2, 6, 9])
    since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=7)
    assert await sink.audit_bounds(since=since, until=until) == (2, 4)
    assert await collect(sink, start=2, stop=4) == [2, 3, 4]
    assert (
        await sink.audit_bounds(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
        is None
    )


async def test_export_round_trip(tmp_path: Path) -> None:
    sink = await filled_sink(list(range(10)))
    path = tmp_path / "audit.ndjson"
    seen: list[tuple[int, int]] = []
    with path.open("wb") as out:
        summary = await export_ndjson(
            sink,
            out,
            since=T0 + timedelta(minutes=2),
            until=T0 + timedelta(minutes=6),
            progress=lambda done, total: seen.append((done, total)),
        )
    assert (summary.count, summary.first_position, summary.last_position) == (4, 3, 6)
    assert summary.start_prev_hash == sink.records[1].hash
    assert summary.last_hash == sink.records[5].hash
    assert seen[-1] == (4, 4)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert set(first) == {
        "event",
        "hash",
        "position",
        "prev_hash",
        "event_id",
        "recorded",
        "layout",
    }
    assert (first["position"], first["layout"], first["event_id"]) == (3, 2, "ev-2-2")
    assert first["event"] == event(2, 2)
    report = verify_export(path, key=KEY)
    assert report.ok
    assert report.head == ChainHead(6, sink.records[5].hash)
    assert verify_export(path, key=KEY, start_prev_hash=sink.records[1].hash).ok
    wrong = verify_export(path, key=KEY, start_prev_hash=sink.records[0].hash)
    assert wrong.problem is not None
    assert (wrong.problem.kind, wrong.problem.position) == ("unlinked", 3)


async def test_consecutive_exports_join(tmp_path: Path) -> None:
    sink = await filled_sink(list(range(8)))
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    with first.open("wb") as out:
        one = await export_ndjson(sink, out, since=T0, until=T0 + timedelta(minutes=4))
    with second.open("wb") as out:
        await export_ndjson(
            sink, out, since=T0 + timedelta(minutes=4), until=T0 + timedelta(minutes=8)
        )
    assert verify_export(first, key=KEY).ok
    assert verify_export(second, key=KEY, start_prev_hash=one.last_hash).ok


async def tampered_export(tmp_path: Path) -> tuple[Path, list[bytes]]:
    sink = await filled_sink(list(range(6)))
    path = tmp_path / "t.ndjson"
    with path.open("wb") as out:
        await export_ndjson(sink, out, since=T0, until=T0 + timedelta(hours=1))
    return path, path.read_bytes().splitlines(keepends=True)


async def test_tampered_export_named(tmp_path: Path) -> None:
    path, lines = await tampered_export(tmp_path)
    edited = json.loads(lines[2])
    edited["event"]["id"] = "someone-else"
    path.write_bytes(b"".join([*lines[:2], json.dumps(edited).encode() + b"\n", *lines[3:]]))
    report = verify_export(path, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 3)


async def test_export_with_line_removed_named(tmp_path: Path) -> None:
    path, lines = await tampered_export(tmp_path)
    path.write_bytes(b"".join(lines[:3] + lines[4:]))
    report = verify_export(path, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("removed", 4)


async def test_export_with_garbage_line_named(tmp_path: Path) -> None:
    path, lines = await tampered_export(tmp_path)
    path.write_bytes(b"".join([*lines[:1], b"not json\n", *lines[1:]]))
    report = verify_export(path, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("inserted", 2)


async def test_export_truncated_tail_needs_checkpoint(tmp_path: Path) -> None:
    path, lines = await tampered_export(tmp_path)
    head = json.loads(lines[-1])
    mark = checkpoint(ChainHead(head["position"], head["hash"]), taken_at=T0)
    path.write_bytes(b"".join(lines[:4]))
    assert verify_export(path, key=KEY).ok
    report = verify_export(path, key=KEY, checkpoints=[mark])
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("truncated", 5)


async def test_empty_export(tmp_path: Path) -> None:
    sink = await filled_sink([0])
    path = tmp_path / "empty.ndjson"
    calls: list[tuple[int, int]] = []
    with path.open("wb") as out:
        summary = await export_ndjson(
            sink,
            out,
            since=T0 + timedelta(days=1),
            until=T0 + timedelta(days=2),
            progress=lambda d, t: calls.append((d, t)),
        )
    assert summary.count == 0
    assert calls == [(0, 0)]
    assert path.read_bytes() == b""
    assert verify_export(path, key=KEY).ok


def test_read_ndjson_skips_blank_lines() -> None:
    records = seal_batch([event(1), event(2)], head=EMPTY_HEAD, key=KEY)
    lines = [json.dumps(r.to_json()).encode() for r in records]
    parsed = list(read_ndjson([lines[0], b"\n", lines[1]]))
    assert parsed == records


def test_naive_export_bounds_rejected() -> None:
    with pytest.raises(ValueError):
        asyncio.run(
            export_ndjson(InMemoryAuditSink(), io.BytesIO(), since=datetime(2026, 1, 1), until=T0)
        )


class FakeTerminal(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_bar_only_on_terminal() -> None:
    assert terminal_progress(FakeTerminal(tty=False)) is None
    screen = FakeTerminal(tty=True)
    draw = terminal_progress(screen, width=4)
    assert draw is not None
    draw(1, 2)
    draw(2, 2)
    assert screen.getvalue() == "\r[##--] 1/2\r[####] 2/2\n"


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_id", "ev-X"), ("recorded", "2020-01-01T00:00:00Z"), ("layout", 1), ("layout", None)],
)
async def test_an_exported_column_edited_or_dropped_is_named(
    tmp_path: Path, field: str, value: Any
) -> None:
    path, lines = await tampered_export(tmp_path)
    edited = json.loads(lines[3])
    if value is None:
        del edited[field]  # a layout-2 line passed off as an old (layout-1) one
    else:
        edited[field] = value
    path.write_bytes(b"".join([*lines[:3], json.dumps(edited).encode() + b"\n", *lines[4:]]))
    report = verify_export(path, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 4)


def test_an_export_from_before_layout_2_still_verifies(tmp_path: Path) -> None:
    """Old archives: layout-1 seals, lines without layout, event_id or recorded."""
    from audit.chain import GENESIS, LEGACY_LAYOUT, canonical_json, seal

    prev, lines = GENESIS, []
    for n in range(1, 4):
        body = canonical_json(event(n))
        digest = seal(body, prev_hash=prev, key=KEY, position=n, layout=LEGACY_LAYOUT)
        line = {"position": n, "prev_hash": prev, "hash": digest, "event": event(n)}
        lines.append(json.dumps(line).encode() + b"\n")
        prev = digest
    path = tmp_path / "old.ndjson"
    path.write_bytes(b"".join(lines))
    report = verify_export(path, key=KEY)
    assert report.ok and report.checked == 3
