"""``medicore hl7 ...`` operator commands and the ``serve`` flags of the HL7 intake.

    medicore hl7 failed [--status S] [--limit N] [--json]   list dead letters
    medicore hl7 reprocess ID | --all                        run them again after a fix
    medicore hl7 send FILE... --port N [--host H]            a small MLLP sender

``failed`` and ``reprocess`` work on the store directly (``--store`` or MEDICORE_STORE),
so they also work while the server is down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from fhir_server.hl7.settings import Hl7Settings

__all__ = ["add_serve_arguments", "hl7_settings_from_args", "register"]


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``medicore serve`` flags of the HL7 intake."""
    parser.add_argument(
        "--mllp-port",
        type=int,
        help="MLLP listener port (MEDICORE_MLLP_PORT, default 2575; 0 turns it off)",
    )
    parser.add_argument(
        "--hl7-default-charset",
        help="charset for HL7 messages with an empty MSH-18, e.g. 'KS X 1001' "
        "(MEDICORE_HL7_DEFAULT_CHARSET; per sender: MEDICORE_HL7_SENDER_CHARSETS, a JSON "
        'object such as {"APP|FACILITY": "8859/1"})',
    )


def hl7_settings_from_args(args: argparse.Namespace) -> Hl7Settings:
    """Environment settings overridden by the flags :func:`add_serve_arguments` added."""
    overrides: dict[str, Any] = {}
    if getattr(args, "mllp_port", None) is not None:
        overrides["mllp_port"] = args.mllp_port
    if getattr(args, "hl7_default_charset", None):
        overrides["hl7_default_charset"] = args.hl7_default_charset
    return Hl7Settings(**overrides)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hl7 failed | reprocess | send`` to the ``medicore`` subcommands."""
    hl7 = commands.add_parser("hl7", help="HL7 v2 intake: dead letters, reprocessing, sending")
    sub = hl7.add_subparsers(dest="hl7_command", required=True)

    failed = sub.add_parser("failed", help="list messages that were not applied")
    _store_argument(failed)
    failed.add_argument("--status", default="failed", choices=["failed", "received", "processed"])
    failed.add_argument("--limit", type=int, default=100)
    failed.add_argument("--json", action="store_true", help="one JSON object per line")
    failed.set_defaults(handler=_failed)

    again = sub.add_parser("reprocess", help="run failed messages again after a fix")
    _store_argument(again)
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the message id shown by 'hl7 failed'")
    which.add_argument("--all", action="store_true", help="every failed message")
    again.set_defaults(handler=_reprocess)

    send = sub.add_parser("send", help="send HL7 files over MLLP and print the ACKs")
    send.add_argument("files", nargs="+", type=Path)
    send.add_argument("--port", type=int, required=True)
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--timeout", type=float, default=30.0)
    send.set_defaults(handler=_send)


def _store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="store URI (MEDICORE_STORE)")


# -- failed / reprocess -----------------------------------------------------------------


async def _with_processor(args: argparse.Namespace, work: Any, *, writes: bool) -> int:
    from fhir_server.app import build_service
    from fhir_server.audit_setup import existing_audit_key, require_audit_key
    from fhir_server.hl7 import hl7_audit
    from fhir_server.hl7.processor import Hl7Processor
    from fhir_server.settings import Settings
    from fhir_server.storage import store_from_uri

    settings = Settings(**({"store": args.store} if args.store else {}))
    # Reprocessing writes AuditEvents, sealed with the server's key: never a new one.
    key = require_audit_key(settings) if writes else existing_audit_key(settings) or b""
    store = store_from_uri(settings.store, mongo_database=settings.mongo_database, audit_key=key)
    await store.open()
    try:
        service = build_service(settings, store)
        base_url = settings.served_base
        processor = Hl7Processor(
            service,
            settings=Hl7Settings(),
            base_url=base_url,
            audit=hl7_audit(settings),
            zone=settings.zone,
        )
        result: int = await work(processor)
        return result
    finally:
        await store.close()


def _failed(args: argparse.Namespace) -> int:
    from fhir_server.hl7 import inbox

    async def work(processor: Any) -> int:
        rows = await processor.store.find_records(
            inbox.KIND, where={"status": args.status}, limit=args.limit
        )
        if args.json:
            for key, doc in rows:
                print(json.dumps(inbox.summary(key, doc), ensure_ascii=False))
            return 0
        print(f"{len(rows)} message(s) in status {args.status}")
        for key, doc in rows:
            error = doc.get("error") or {}
            print(
                f"{key}\t{doc.get('message_type') or '-'}\t{doc.get('ack_code') or '-'}\t"
                f"{error.get('code', '-')}\t{error.get('location') or '-'}\t"
                f"{error.get('text', '')}\t{doc.get('received_at')}"
            )
        return 0

    return asyncio.run(_with_processor(args, work, writes=False))


def _keyed_run(args: argparse.Namespace, work: Any) -> int:
    from fhir_server.audit_setup import AuditKeyMissing

    try:
        return asyncio.run(_with_processor(args, work, writes=True))
    except AuditKeyMissing as exc:
        print(f"medicore: error: {exc}", file=sys.stderr)
        return 2


def _reprocess(args: argparse.Namespace) -> int:
    from fhir_server.hl7.processor import AlreadyProcessed

    async def work(processor: Any) -> int:
        if args.all:
            done = await processor.reprocess_all()
        else:
            try:
                ack = await processor.reprocess(args.id)
            except AlreadyProcessed:
                print(f"{args.id}: processed already", file=sys.stderr)
                return 1
            if ack is None:
                print(f"{args.id}: no such message", file=sys.stderr)
                return 1
            done = [(args.id, ack)]
        for key, ack in done:
            print(f"{key}\t{ack.code}")
        return 0 if all(ack.code == "AA" for _, ack in done) else 1

    return _keyed_run(args, work)


# -- send --------------------------------------------------------------------------------


def _messages(raw: bytes) -> list[bytes]:
    """A file's messages (CR-separated); a batch file or unparseable bytes go as one block."""
    from converters import ConversionError, is_batch, split_batch

    if is_batch(raw):
        return [raw]
    try:
        return split_batch(raw) or [raw]
    except ConversionError:
        return [raw]


def _send(args: argparse.Namespace) -> int:
    from fhir_server.hl7.client import MllpClient, ack_code

    async def run() -> int:
        worst = 0
        async with MllpClient(args.host, args.port, timeout=args.timeout) as client:
            for path in args.files:
                for message in _messages(path.read_bytes()):
                    ack = await client.send(message)
                    code = ack_code(ack) or "??"
                    print(f"{path}: {code}")
                    print(ack.decode("utf-8", "replace").replace("\r", "\n").rstrip())
                    worst = worst if code == "AA" else 1
        return worst

    return asyncio.run(run())
