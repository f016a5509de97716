"""The MLLP listener: frames in, one message at a time per connection, ACK frames out.

Sockets and streams come from ``hl7.mllp`` (``start_hl7_server``, ``HL7StreamWriter.
writeblock``). Reading uses our own :func:`read_frame` on the same stream instead of
``MLLPStreamReader.readblock``: that one raises and *drops the block* when bytes precede
<VT> (stray CR/LF between frames is common with real senders) and cannot tell a clean
close between frames from one inside a frame. Messages stay bytes here; decoding is the
converter's job (MSH-18 and per-sender charsets).

Connections run concurrently (the store groups their commits); within one connection a
message is answered before the next is read, so a sender's order is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server

from converters import ConversionError, build_ack
from fhir_server.hl7.inbox import now
from fhir_server.hl7.processor import Hl7Processor

__all__ = ["END_BLOCK", "START_BLOCK", "FramingError", "MllpListener", "read_frame"]

log = logging.getLogger("medicore.hl7.mllp")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"


class FramingError(Exception):
    """The byte stream does not follow MLLP: closed inside a frame, or a frame too large."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The payload of the next ``<VT>payload<FS><CR>`` frame; None at a clean end of stream.

    Bytes before <VT> are skipped; a frame with no <VT> at all is returned whole (so that
    it is answered AR and dead-lettered rather than silently lost). A second <VT> before
    <FS><CR> means the sender abandoned a frame and started again: the frame begins at the
    last <VT>, and the abandoned (unacknowledged, so resent) bytes are dropped, never
    applied as part of the next message.

    Raises FramingError when the stream ends inside a frame or a frame exceeds the
    reader's limit (the connection cannot be resynchronized then).
    """
    try:
        data = await reader.readuntil(END_BLOCK)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip(b" \t\r\n\x00"):
            raise FramingError("the stream ended inside a frame") from None
        return None
    except asyncio.LimitOverrunError:
        raise FramingError("frame larger than the configured limit", too_large=True) from None
    start = data.rfind(START_BLOCK)
    if start < 0:
        return data[: -len(END_BLOCK)]
    if data.find(START_BLOCK) < start:
        log.warning("MLLP: %d bytes of an abandoned frame dropped", start)
    return data[start + 1 : -len(END_BLOCK)]


@dataclass(eq=False)
class _Connection:
    writer: HL7StreamWriter
    busy: bool = False
    task: asyncio.Task[None] | None = field(default=None)


class MllpListener:
    """One listening socket; :meth:`stop` lets messages in progress finish and be answered."""

    def __init__(
        self,
        processor: Hl7Processor,
        *,
        host: str,
        port: int,
        max_message_bytes: int,
        idle_timeout: float,
        sock: socket.socket | None = None,
    ) -> None:
        """``sock``: an already listening socket to accept on (``host``/``port`` unused)."""
        self.processor = processor
        self.sock = sock
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        #: Told the number of open connections whenever it changes (a metrics gauge).
        self.on_connections: Callable[[int], None] | None = None

    async def start(self) -> None:
        if self.sock is not None:
            self._server = await start_hl7_server(
                self._serve, sock=self.sock, limit=self.max_message_bytes
            )
        else:
            self._server = await start_hl7_server(
                self._serve, self.host, self.port, limit=self.max_message_bytes
            )
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("MLLP listener on %s:%d", self.host, self.port)

    async def stop(self, *, grace: float = 10.0) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.writer.close()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
            self._server = None

    @property
    def connections(self) -> int:
        """Open connections now."""
        return len(self._connections)

    def _count_connections(self) -> None:
        if self.on_connections is not None:
            self.on_connections(len(self._connections))

    async def _serve(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        conn = _Connection(writer, task=asyncio.current_task())
        self._connections.add(conn)
        self._count_connections()
        try:
            await self._loop(reader, conn)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # one connection's failure never stops the listener
            log.error("MLLP connection failed (%s)", type(exc).__name__)
        finally:
            self._connections.discard(conn)
            self._count_connections()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _loop(self, reader: HL7StreamReader, conn: _Connection) -> None:
        while not self._closing:
            try:
                payload = await asyncio.wait_for(read_frame(reader), self.idle_timeout)
            except TimeoutError:
                return
            except FramingError as exc:
                log.warning("MLLP: %s; closing the connection", exc)
                if exc.too_large:
                    error = ConversionError(str(exc), ack_code="AR", error_code="104")
                    text = build_ack(None, code="AR", error=error, control_id="", timestamp=now())
                    conn.writer.writeblock(text.encode("ascii"))
                    await conn.writer.drain()
                return
            if payload is None:
                return
            conn.busy = True
            try:
                ack = await self.processor.handle(payload, source="mllp")
                conn.writer.writeblock(ack.encoded())
                await conn.writer.drain()
            finally:
                conn.busy = False
