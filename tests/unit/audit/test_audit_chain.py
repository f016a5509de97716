"""Tampering with an audit chain is named by position; truncation needs a checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.chain import (
    EMPTY_HEAD,
    GENESIS,
    LEGACY_LAYOUT,
    ChainedRecord,
    ChainHead,
    Checkpoint,
    canonical_json,
    checkpoint,
    seal,
    seal_batch,
    verify,
)

KEY = b"test-secret-key-0123456789abcdef"
TAKEN = datetime(2026, 3, 2, tzinfo=UTC)


def make_events(count: int) -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "AuditEvent",
            "id": f"ev-{n}",
            "action": "R",
            "outcome": "0",
            "recorded": f"2026-03-01T08:00:{n:02d}.000000Z",
        }
        for n in range(1, count + 1)
    ]


@pytest.fixture
def chain() -> list[ChainedRecord]:
    return seal_batch(make_events(10), head=EMPTY_HEAD, key=KEY)


def at(records: list[ChainedRecord], position: int) -> int:
    return next(i for i, r in enumerate(records) if r.position == position)


def test_intact_chain_verifies(chain: list[ChainedRecord]) -> None:
    report = verify(chain, key=KEY)
    assert report.ok
    assert report.checked == 10
    assert report.head == ChainHead(10, chain[-1].hash)
    assert [r.position for r in chain] == list(range(1, 11))
    assert chain[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))


def test_seal_matches_documented_formula() -> None:
    event = {"b": 1, "a": "é"}
    legacy = hmac.new(
        KEY, b'medicore-audit-v1\n3\nabc\n{"a":"\xc3\xa9","b":1}', hashlib.sha256
    ).hexdigest()
    raw = b'{ "b": 1, "a": "\\u00e9" }'
    assert seal(raw, prev_hash="abc", key=KEY, position=3, layout=LEGACY_LAYOUT) == legacy
    assert canonical_json(event) == b'{"a":"\xc3\xa9","b":1}'
    # layout 2: every stored column but the hash, the columns as a JSON array
    current = hmac.new(
        KEY,
        b'medicore-audit-v2\n[3,"abc","ev-1","2026-03-01T08:00:00Z"]\n'
        b'{"id":"ev-1","recorded":"2026-03-01T08:00:00Z"}',
        hashlib.sha256,
    ).hexdigest()
    body = b'{"recorded": "2026-03-01T08:00:00Z", "id": "ev-1"}'
    assert seal(body, prev_hash="abc", key=KEY, position=3) == current


def test_seal_binds_position_prev_hash_and_key() -> None:
    body = b'{"id":"x"}'
    base = seal(body, prev_hash=GENESIS, key=KEY, position=1)
    assert seal(body, prev_hash=GENESIS, key=KEY, position=2) != base
    assert seal(body, prev_hash="f" * 64, key=KEY, position=1) != base
    assert seal(body, prev_hash=GENESIS, key=b"other", position=1) != base
    with pytest.raises(ValueError):
        seal(body, prev_hash=GENESIS, key=b"", position=1)
    with pytest.raises(ValueError):
        seal(body, prev_hash=GENESIS, key=KEY, position=0)


def test_altered_field_named(chain: list[ChainedRecord]) -> None:
    event = chain[3].event()
    event["outcome"] = "4"
    chain[3] = dataclasses.replace(chain[3], event_json=json.dumps(event).encode())
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 4)
    assert report.checked == 3
    assert report.head.position == 3


def test_altered_hash_named(chain: list[ChainedRecord]) -> None:
    chain[6] = dataclasses.replace(chain[6], hash="0" * 64)
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 7)


def test_altered_position_field_named(chain: list[ChainedRecord]) -> None:
    chain[4] = dataclasses.replace(chain[4], position=500)
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 5)


def test_deleted_record_named(chain: list[ChainedRecord]) -> None:
    del chain[at(chain, 5)]
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("removed", 5)
    assert report.checked == 4


def test_deleted_record_hidden_by_renumbering_named(chain: list[ChainedRecord]) -> None:
    del chain[at(chain, 5)]
    chain = [dataclasses.replace(r, position=i) for i, r in enumerate(chain, start=1)]
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("removed", 5)


def test_deleted_first_record_named(chain: list[ChainedRecord]) -> None:
    del chain[0]
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("removed", 1)


def test_several_deleted_records_named(chain: list[ChainedRecord]) -> None:
    del chain[3:6]  # positions 4, 5, 6
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("removed", 4)
    assert "3 record(s) missing" in report.problem.detail


def forged(position: int, prev_hash: str) -> ChainedRecord:
    event = {"resourceType": "AuditEvent", "id": "forged", "recorded": "2026-03-01T08:00:03Z"}
    return ChainedRecord(
        position=position,
        prev_hash=prev_hash,
        hash=hashlib.sha256(b"forged").hexdigest(),
        event_json=canonical_json(event),
    )


def test_inserted_record_named(chain: list[ChainedRecord]) -> None:
    chain.insert(3, forged(4, chain[2].hash))
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("inserted", 4)
    assert report.checked == 3


def test_inserted_record_with_renumbering_named(chain: list[ChainedRecord]) -> None:
    chain.insert(3, forged(4, chain[2].hash))
    chain = [dataclasses.replace(r, position=i) for i, r in enumerate(chain, start=1)]
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("inserted", 4)


def test_replayed_copy_named(chain: list[ChainedRecord]) -> None:
    chain.insert(6, chain[1])  # a copy of record 2 after record 6
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("inserted", 7)
    assert "copy of record 2" in report.problem.detail


def test_reordered_records_named(chain: list[ChainedRecord]) -> None:
    chain[3], chain[4] = chain[4], chain[3]  # records 4 and 5 swap places
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("reordered", 4)


def test_reordered_payloads_named(chain: list[ChainedRecord]) -> None:
    # Positions stay (as a store's primary key would); the contents swap.
    fourth, fifth = chain[3], chain[4]
    chain[3] = dataclasses.replace(fifth, position=4)
    chain[4] = dataclasses.replace(fourth, position=5)
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("reordered", 4)


def test_truncated_tail_needs_checkpoint(chain: list[ChainedRecord]) -> None:
    mark = checkpoint(ChainHead(10, chain[-1].hash), taken_at=TAKEN)
    truncated = chain[:7]
    assert verify(truncated, key=KEY).ok  # the limit documented in audit.chain
    report = verify(truncated, key=KEY, checkpoints=[mark])
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("truncated", 8)
    assert report.head.position == 7


def test_rewrite_with_key_caught_only_by_checkpoint(chain: list[ChainedRecord]) -> None:
    mark = checkpoint(ChainHead(10, chain[-1].hash), taken_at=TAKEN)
    events = [r.event() for r in chain]
    events[2]["outcome"] = "4"
    rewritten = seal_batch(events, head=EMPTY_HEAD, key=KEY)
    assert verify(rewritten, key=KEY).ok
    report = verify(rewritten, key=KEY, checkpoints=[mark])
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 10)


def test_empty_chain_and_checkpoint() -> None:
    assert verify([], key=KEY).ok
    report = verify([], key=KEY, checkpoints=[Checkpoint(3, "a" * 64, "x")])
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("truncated", 1)


def test_wrong_key_fails_at_first_record(chain: list[ChainedRecord]) -> None:
    report = verify(chain, key=b"not-the-key")
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 1)


def test_malformed_event_json_is_altered(chain: list[ChainedRecord]) -> None:
    chain[1] = dataclasses.replace(chain[1], event_json=b"{not json")
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 2)


def test_slice_verifies_from_its_anchor(chain: list[ChainedRecord]) -> None:
    middle = chain[4:8]
    assert not verify(middle, key=KEY).ok
    report = verify(middle, key=KEY, start_position=5, start_prev_hash=chain[3].hash)
    assert report.ok
    assert report.head == ChainHead(8, chain[7].hash)
    wrong = verify(middle, key=KEY, start_position=5, start_prev_hash=chain[2].hash)
    assert wrong.problem is not None
    assert (wrong.problem.kind, wrong.problem.position) == ("unlinked", 5)


def test_seal_batch_continues_a_head(chain: list[ChainedRecord]) -> None:
    more = seal_batch(
        [json.dumps(e).encode() for e in make_events(2)],
        head=ChainHead(10, chain[-1].hash),
        key=KEY,
    )
    assert [r.position for r in more] == [11, 12]
    assert verify(chain + more, key=KEY).ok


def test_report_describe_and_checkpoint_json(chain: list[ChainedRecord]) -> None:
    assert verify(chain, key=KEY).describe() == "audit chain OK: 10 records, head at position 10"
    broken = verify(chain[:3] + chain[4:], key=KEY).describe()
    assert broken == "audit chain BROKEN at position 4 (removed): record 4 is missing"
    mark = checkpoint(ChainHead(10, chain[-1].hash), taken_at=TAKEN)
    assert Checkpoint.from_json(json.loads(json.dumps(mark.to_json()))) == mark
    assert mark.to_json() == {
        "position": 10,
        "hash": chain[-1].hash,
        "taken_at": "2026-03-02T00:00:00+00:00",
    }
    with pytest.raises(ValueError):
        checkpoint(EMPTY_HEAD, taken_at=datetime(2026, 1, 1))


def test_canonical_json_is_sorted_compact_utf8() -> None:
    event = {
        "z": [{"b": True, "a": None}],
        "id": "환자-접근",
        "n": 12,
        "text": 'line\nbreak "quoted" \\ slash/',
    }
    stdlib = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(event) == stdlib.encode("utf-8")
    with pytest.raises(ValueError):
        canonical_json({"opaque": object()})


@pytest.mark.parametrize(
    ("column", "value"),
    [("event_id", "ev-X"), ("recorded", "2026-03-01T09:00:00.000000Z"), ("layout", 1)],
)
def test_altered_column_beside_the_event_named(
    chain: list[ChainedRecord], column: str, value: Any
) -> None:
    chain[5] = dataclasses.replace(chain[5], **{column: value})
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 6)


@pytest.mark.parametrize("layout", [0, 3, 2.0, "2", True])
def test_a_layout_we_never_write_is_altered(chain: list[ChainedRecord], layout: Any) -> None:
    chain[2] = dataclasses.replace(chain[2], layout=layout)
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 3)


@pytest.mark.parametrize("column", ["prev_hash", "hash", "event_id", "recorded"])
def test_a_column_that_is_not_text_is_altered_not_a_crash(
    chain: list[ChainedRecord], column: str
) -> None:
    chain[1] = dataclasses.replace(chain[1], **{column: b"\x00"})
    report = verify(chain, key=KEY)
    assert report.problem is not None
    assert report.problem.position == 2


def legacy_chain(events: list[dict[str, Any]]) -> list[ChainedRecord]:
    """Records as the previous release sealed them (layout 1), columns as it stored them."""
    records, prev = [], GENESIS
    for n, event in enumerate(events, start=1):
        body = canonical_json(event)
        digest = seal(body, prev_hash=prev, key=KEY, position=n, layout=LEGACY_LAYOUT)
        records.append(
            ChainedRecord(
                position=n,
                prev_hash=prev,
                hash=digest,
                event_json=body,
                event_id=event["id"],
                recorded=event["recorded"],
            )
        )
        prev = digest
    return records


def test_legacy_records_verify_and_the_chain_continues_in_layout_2() -> None:
    old = legacy_chain(make_events(4))
    new = seal_batch(make_events(2), head=ChainHead(4, old[-1].hash), key=KEY)
    assert [r.layout for r in old + new] == [1, 1, 1, 1, 2, 2]
    assert verify(old + new, key=KEY).ok


@pytest.mark.parametrize(("column", "value"), [("event_id", "ev-X"), ("recorded", "2020")])
def test_legacy_columns_must_equal_the_sealed_event(column: str, value: str) -> None:
    old = legacy_chain(make_events(4))
    old[2] = dataclasses.replace(old[2], **{column: value})
    report = verify(old, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 3)
    assert report.problem.detail == "event_id or recorded column differs from the sealed event"


def test_a_legacy_record_relabelled_layout_2_is_altered() -> None:
    old = legacy_chain(make_events(3))
    old[0] = dataclasses.replace(old[0], layout=2)
    report = verify(old, key=KEY)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.position) == ("altered", 1)
