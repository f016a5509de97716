"""``medicore audit verify|export|checkpoint|index``: the auditor's and operator's chain
tools, and the AuditEvent indexer that ``medicore serve`` runs beside it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.chain import ChainedRecord, Checkpoint, checkpoint, verify
from audit.export import export_ndjson, terminal_progress, verify_export
from fhir_server.audit_indexer import follow
from fhir_server.audit_setup import AuditKeyMissing, existing_audit_key, require_audit_key
from fhir_server.observability.logs import configure_logging
from fhir_server.search.registry import SearchRegistry
from fhir_server.settings import Settings
from fhir_server.storage import store_from_uri


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(**({"store": args.store} if args.store else {}))


def _open(settings: Settings, *, key: bytes | None = None) -> Any:
    """The store for reading; none of these commands appends, so none needs to seal."""
    return store_from_uri(
        settings.store,
        mongo_database=settings.mongo_database,
        audit_key=key if key is not None else existing_audit_key(settings) or b"",
    )


def _checkpoints(paths: list[str] | None) -> list[Checkpoint]:
    return [Checkpoint.from_json(json.loads(Path(p).read_text())) for p in paths or []]


async def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    key = require_audit_key(settings)
    store = _open(settings, key=key)
    await store.open()
    try:
        # The whole chain is held in memory for the walk: ~1 KB per record.
        records: list[ChainedRecord] = [r async for r in store.iter_audit()]
    finally:
        await store.close()
    report = verify(records, key=key, checkpoints=_checkpoints(args.checkpoint))
    print(report.describe())
    return 0 if report.ok else 1


async def _export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _open(settings)
    await store.open()
    try:
        with open(args.out, "wb") as out:
            summary = await export_ndjson(
                store,
                out,
                since=_instant(args.since),
                until=_instant(args.until),
                progress=terminal_progress(sys.stderr),
            )
    finally:
        await store.close()
    print(json.dumps(dataclasses.asdict(summary)))
    return 0


async def _checkpoint(args: argparse.Namespace) -> int:
    store = _open(_settings(args))
    await store.open()
    try:
        head = await store.audit_head()
    finally:
        await store.close()
    text = json.dumps(checkpoint(head, taken_at=datetime.now(UTC)).to_json())
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


async def _index(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _open(settings)  # indexing reads the chain; it never seals
    registry = SearchRegistry.configured(settings.search_parameters_dirs, zone=settings.zone)
    await store.open()
    try:
        if args.follow:
            configure_logging(level="WARNING")  # JSON lines, as the server writes them
            await follow(store, registry=registry, parent_pid=args.parent)
            return 0
        total = 0
        while indexed := await store.index_audit(registry=registry):
            total += indexed
    finally:
        await store.close()
    print(json.dumps({"indexed": total}))
    return 0


def _verify_file(args: argparse.Namespace) -> int:
    report = verify_export(Path(args.file), key=require_audit_key(_settings(args)))
    print(report.describe())
    return 0 if report.ok else 1


def _keyed(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Exit 2 with the key's expected location when it is missing (1 means a broken chain)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except AuditKeyMissing as exc:
            print(f"medicore: error: {exc}", file=sys.stderr)
            return 2

    return run


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser(
        "audit", help="verify, export, checkpoint and index the audit chain"
    )
    actions = audit.add_subparsers(dest="audit_command", required=True)

    def with_store(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--store", help="store URI (default: MEDICORE_STORE or ./data)")
        return parser

    check = with_store(actions.add_parser("verify", help="walk the chain; exit 1 on any break"))
    check.add_argument(
        "--checkpoint", action="append", help="a checkpoint file kept off the machine"
    )
    check.set_defaults(handler=_keyed(lambda a: asyncio.run(_verify(a))))

    export = with_store(actions.add_parser("export", help="NDJSON of records in a time range"))
    export.add_argument("--since", required=True, help="FHIR instant, e.g. 2026-01-01T00:00:00Z")
    export.add_argument("--until", required=True)
    export.add_argument("--out", required=True, help="file to write")
    export.set_defaults(handler=lambda a: asyncio.run(_export(a)))

    point = with_store(actions.add_parser("checkpoint", help="print the chain head to ship away"))
    point.add_argument("--out", help="also write it to this file")
    point.set_defaults(handler=lambda a: asyncio.run(_checkpoint(a)))

    index = with_store(actions.add_parser("index", help="make recorded AuditEvents searchable"))
    index.add_argument("--follow", action="store_true", help="keep indexing as events arrive")
    index.add_argument("--parent", type=int, help="stop when this process is gone")
    index.set_defaults(handler=lambda a: asyncio.run(_index(a)))

    exported = with_store(actions.add_parser("verify-export", help="verify an exported file"))
    exported.add_argument("file")
    exported.set_defaults(handler=_keyed(_verify_file))
