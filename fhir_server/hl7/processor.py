"""One HL7 v2 message from bytes to ACK: inbox first, then convert and commit, then answer.

The order is what makes an AA trustworthy: the raw bytes are durable (status
``received``) before conversion starts, and the Bundle commits in the same store
transaction as the inbox record turning ``processed`` with its ACK. A process killed in
between leaves a ``received`` record, which :meth:`Hl7Processor.recover` runs again at
start-up; conditional writes keyed on business identifiers make that replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from typing import Any

from converters import (
    ConversionError,
    MessageHeader,
    build_ack,
    codec_for,
    convert,
    decode_message,
    is_batch,
    read_header,
    split_batch,
)
from fhir_server.hl7 import inbox
from fhir_server.hl7.inbox import KIND, InboxError
from fhir_server.hl7.settings import Hl7Settings
from fhir_server.resources import errors
from fhir_server.resources.auditing import AuditTrail
from fhir_server.resources.bundles import BundleProcessor
from fhir_server.resources.requests import EntryUrl
from fhir_server.resources.service import ResourceService
from fhir_server.storage.base import RecordChanged, RecordWrite, StoreError, WriteBatch

__all__ = ["Ack", "AlreadyProcessed", "AuditFactory", "Hl7Processor"]

log = logging.getLogger("medicore.hl7")

#: The audit trail of one message's writes, given the sender ("app|facility").
AuditFactory = Callable[[str | None], AuditTrail | None]


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to one message (or one batch) and where it came from."""

    text: str  # CR-separated ACK message
    code: str  # AA | AE | AR
    key: str | None  # inbox key; None when nothing was stored
    duplicate: bool = False  # the original ACK of a message seen before
    codec: str = "utf-8"  # the sender's charset, for the MLLP answer

    def encoded(self) -> bytes:
        try:
            return self.text.encode(self.codec, errors="replace")
        except (LookupError, UnicodeError):  # a codec that cannot carry text: answer anyway
            return self.text.encode("utf-8", errors="replace")


class AlreadyProcessed(Exception):
    """Reprocessing was asked for a message that was applied already."""


async def _no_get(url: EntryUrl) -> tuple[int, dict[str, Any] | None]:
    raise errors.method_not_allowed("HL7 transactions carry no GET entries")


def fhir_error(exc: errors.FhirError) -> InboxError:
    """A FHIR failure while applying the Bundle, as an HL7 table 0357 error."""
    if exc.status in (404, 410):
        code = "204"  # unknown key identifier: something the message refers to is missing
    elif exc.status == 412:
        code = "205"  # duplicate key identifier: a business identifier matches several
    elif exc.status in (409, 503, 507):
        code = "206"  # application record locked / store busy or full: retry later
    else:
        code = "207"
    return InboxError(code, None, exc.diagnostics, ",".join(exc.expression) or None)


class Hl7Processor:
    """Admits, converts and commits HL7 messages; lists and reprocesses the failed ones."""

    def __init__(
        self,
        service: ResourceService,
        *,
        settings: Hl7Settings,
        base_url: str,
        audit: AuditFactory | None = None,
        zone: tzinfo = UTC,
    ) -> None:
        self.service = service
        self.zone = settings.time_zone(zone)  # how HL7 times without an offset are read
        self.store = service.store
        self.settings = settings
        self.base_url = base_url
        self.audit = audit
        self._inflight: dict[str, tuple[str, asyncio.Future[Ack]]] = {}
        # Called with (message type, ACK code) for every message: the metrics hook.
        self.on_ack: Callable[[str, str], None] | None = None
        # Called once per message kept because it reused a control id with other content.
        self.on_control_id_reused: Callable[[], None] | None = None

    # -- entry points ------------------------------------------------------------------

    async def handle(self, raw: bytes, *, source: str) -> Ack:
        """Process one message, or each message of an FHS/BHS batch, and return the ACK."""
        if is_batch(raw):
            return await self._batch(raw, source=source)
        return await self._one(raw, source=source)

    async def reprocess(self, key: str) -> Ack | None:
        """Run a stored message again (after a fix); None when the key is unknown."""
        doc = await self.store.get_record(KIND, key)
        if doc is None:
            return None
        if doc.get("status") == "processed":
            raise AlreadyProcessed(key)
        raw = inbox.raw_bytes(doc)
        header, charset = self._read_header(raw)
        digest = inbox.content_digest(raw)
        return await self._exclusive(
            key, digest, lambda: self._apply(key, raw, doc, header, charset)
        )

    async def reprocess_all(self, *, status: str = "failed") -> list[tuple[str, Ack]]:
        """Reprocess every message in ``status`` (failed, or received after a crash)."""
        done: list[tuple[str, Ack]] = []
        after: str | None = None
        while True:
            rows = await self.store.find_records(
                KIND, where={"status": status}, after=after, limit=100
            )
            if not rows:
                return done
            for key, _ in rows:
                try:
                    ack = await self.reprocess(key)
                except AlreadyProcessed:
                    continue
                if ack is not None:
                    done.append((key, ack))
            after = rows[-1][0]

    async def recover(self) -> int:
        """Messages left ``received`` by a killed process: process them again."""
        recovered = await self.reprocess_all(status="received")
        if recovered:
            log.info("hl7: recovered %d message(s) left in status received", len(recovered))
        return len(recovered)

    # -- one message -----------------------------------------------------------------------

    def _read_header(self, raw: bytes) -> tuple[MessageHeader | None, str | None]:
        """MSH, read with the sender's default charset when MSH-18 is empty."""
        charset = self.settings.charset_for(None)
        try:
            header: MessageHeader | None = read_header(raw, default_charset=charset)
        except ConversionError as exc:
            header = exc.header
        if header is None:
            return None, charset
        sender_charset = self.settings.charset_for(header.sender)
        if sender_charset != charset:
            charset = sender_charset
            try:
                header = read_header(raw, default_charset=charset)
            except ConversionError as exc:
                header = exc.header or header
        return header, charset

    async def _one(self, raw: bytes, *, source: str) -> Ack:
        if not raw.strip():
            error = ConversionError("empty message", ack_code="AR", error_code="100")
            return self._ack(None, "AR", error, key=None)
        header, charset = self._read_header(raw)
        codec = codec_for(header.charset or charset or "utf-8") if header else None
        key = inbox.inbox_key(header, raw)
        digest = inbox.content_digest(raw)
        ack = await self._exclusive(
            key, digest, lambda: self._admit(key, raw, digest, header, charset, source=source)
        )
        if self.on_ack is not None:
            self.on_ack(header.message_type if header else "unknown", ack.code)
        return replace(ack, codec=codec or "utf-8")

    async def _exclusive(self, key: str, digest: str, work: Callable[[], Awaitable[Ack]]) -> Ack:
        """One task per message key in this process; a resend in flight gets the same ACK.

        Only an identical resend waits for it: other content under the key runs on its own
        (and meets the stored record, which tells it apart).
        """
        pending = self._inflight.get(key)
        if pending is not None and pending[0] == digest:
            ack = await asyncio.shield(pending[1])
            return replace(ack, duplicate=True)
        if pending is not None:
            await asyncio.wait([pending[1]])  # let the first one store its record
            return await work()
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (digest, future)
        try:
            ack = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(ack)
        return ack

    async def _admit(
        self,
        key: str,
        raw: bytes,
        digest: str,
        header: MessageHeader | None,
        charset: str | None,
        *,
        source: str,
    ) -> Ack:
        # Insert first: one write decides "new" or "seen before" (no read, no race).
        doc = inbox.received_doc(
            raw, header=header, text=_decoded(raw, charset), source=source, at=inbox.now()
        )
        try:
            prior = await inbox.insert(self.store, key, doc)
        except StoreError:
            return self._not_stored(header, key)
        if prior is not None and inbox.content_digest(inbox.raw_bytes(prior)) != digest:
            return await self._reused(key, digest, doc, header)
        if prior is not None and prior.get("ack") and not _retryable(prior):
            return Ack(prior["ack"], prior.get("ack_code") or "AA", key, True)
        existing = prior or doc  # a prior record without ACK: a crash left it unfinished
        return await self._apply(key, raw, existing, header, charset)

    async def _reused(
        self, key: str, digest: str, doc: dict[str, Any], header: MessageHeader | None
    ) -> Ack:
        """Other content under a taken control id: kept as a dead letter and answered AE.

        Senders reuse control ids after a restart; the original's ACK would tell them a
        message we never applied was accepted. An identical resend of this one meets its
        own record and gets this same AE back.
        """
        dead_key = inbox.reused_key(key, digest)
        error = InboxError("205", "MSH^1^10", inbox.REUSED_CONTROL_ID)
        ack = self._ack(header, "AE", error.as_conversion_error("AE"), key=dead_key)
        dead = inbox.failed_doc(
            doc, header=header, ack=ack.text, ack_code="AE", error=error, at=inbox.now()
        )
        dead["attempts"] = 0  # never applied: kept for an operator to look at
        try:
            prior = await inbox.insert(self.store, dead_key, dead)
        except StoreError:
            return self._not_stored(header, dead_key)
        if prior is not None and prior.get("ack"):
            return Ack(prior["ack"], prior.get("ack_code") or "AE", dead_key, True)
        log.warning("hl7: %s: %s, kept as %s (AE)", key, inbox.REUSED_CONTROL_ID, dead_key)
        if self.on_control_id_reused is not None:
            self.on_control_id_reused()
        return ack

    async def _apply(
        self,
        key: str,
        raw: bytes,
        base: dict[str, Any],
        header: MessageHeader | None,
        charset: str | None,
    ) -> Ack:
        try:
            conversion = convert(
                raw,
                default_charset=charset,
                message_ref=key,
                default_timezone=self.zone,
            )
        except ConversionError as exc:
            return await self._fail(key, base, exc.header or header, exc.ack_code, exc)
        ack = self._ack(conversion.header, "AA", None, key=key)
        doc = inbox.processed_doc(
            base, header=conversion.header, text=conversion.text, ack=ack.text, at=inbox.now()
        )
        trail = self.audit(conversion.header.sender) if self.audit is not None else None
        bundles = BundleProcessor(self.service, base_url=self.base_url, on_get=_no_get, trail=trail)
        try:
            await bundles.process(conversion.bundle, records=[_settle(key, base, doc)])
        except RecordChanged:
            return await self._settled_elsewhere(key)
        except errors.FhirError as exc:
            return await self._fail(key, base, conversion.header, "AE", fhir_error(exc))
        except Exception as exc:  # never a dropped connection: AE and keep the message
            log.error("hl7: %s failed to apply (%s)", key, type(exc).__name__)
            internal = InboxError("207", None, "internal error while applying the message")
            return await self._fail(key, base, conversion.header, "AE", internal)
        return ack

    async def _fail(
        self,
        key: str,
        base: dict[str, Any],
        header: MessageHeader | None,
        ack_code: str,
        problem: ConversionError | InboxError,
    ) -> Ack:
        error = InboxError.of(problem) if isinstance(problem, ConversionError) else problem
        ack = self._ack(header, ack_code, error.as_conversion_error(ack_code), key=key)
        doc = inbox.failed_doc(
            base, header=header, ack=ack.text, ack_code=ack_code, error=error, at=inbox.now()
        )
        log.warning("hl7: %s -> %s %s at %s", key, ack_code, error.code, error.location or "-")
        try:
            await self.store.commit(WriteBatch(records=[_settle(key, base, doc)]))
        except RecordChanged:
            return await self._settled_elsewhere(key)
        except StoreError:
            # Still "received": start-up recovery or a resend will run it again.
            log.warning("hl7: could not record the failure of %s", key)
        return ack

    def _not_stored(self, header: MessageHeader | None, key: str) -> Ack:
        """AE "resend later": the store did not take the message, so nothing is promised."""
        log.warning("hl7: message %s not stored: the store is unavailable", key)
        error = ConversionError("the message could not be stored; resend later", error_code="206")
        return self._ack(header, "AE", error, key=None)

    async def _settled_elsewhere(self, key: str) -> Ack:
        """Another process (a worker, another server) settled the message first: its ACK."""
        settled = await self.store.get_record(KIND, key) or {}
        if settled.get("ack"):
            return Ack(settled["ack"], settled.get("ack_code") or "AA", key, True)
        error = ConversionError("the message is being processed; resend later", error_code="206")
        return self._ack(None, "AE", error, key=None)

    def _ack(
        self,
        header: MessageHeader | None,
        code: str,
        error: ConversionError | None,
        *,
        key: str | None,
    ) -> Ack:
        text = build_ack(
            header,
            code=code,
            error=error,
            control_id=uuid.uuid4().hex[:20],
            timestamp=inbox.now(),
        )
        return Ack(text, code, key)

    # -- batches ------------------------------------------------------------------------------

    async def _batch(self, raw: bytes, *, source: str) -> Ack:
        """FHS/BHS batches: each message on its own, answered by a batch of ACKs."""
        try:
            messages = split_batch(raw)
        except ConversionError:
            return await self._one(raw, source=source)
        acks = [await self._one(message, source=source) for message in messages]
        body = "".join(ack.text for ack in acks)
        text = f"BHS|^~\\&\r{body}BTS|{len(acks)}\r"
        worst = next((c for c in ("AR", "AE") if any(a.code == c for a in acks)), "AA")
        codec = acks[0].codec if acks else "utf-8"
        return Ack(text, worst, None, codec=codec)


def _settle(key: str, base: dict[str, Any], doc: dict[str, Any]) -> RecordWrite:
    """The message's outcome, written only if nobody settled it since ``base`` was read:
    two processes given the same message both apply it, and the store keeps one."""
    expect = {"status": base.get("status"), "attempts": base.get("attempts", 0)}
    return RecordWrite(KIND, key, doc, expect=expect)


def _retryable(prior: dict[str, Any]) -> bool:
    """A failure whose ACK told the sender to retry later (206): a resend runs it again."""
    return prior.get("status") == "failed" and (prior.get("error") or {}).get("code") == "206"


def _decoded(raw: bytes, charset: str | None) -> str | None:
    try:
        return decode_message(raw, default_charset=charset)
    except ConversionError:
        return None
