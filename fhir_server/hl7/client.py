"""A small MLLP sender (``medicore hl7 send``, benchmarks, tests): one message, one ACK."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from hl7.mllp import HL7StreamWriter, open_hl7_connection

from fhir_server.hl7.mllp import FramingError, read_frame

__all__ = ["MllpClient", "ack_code"]


def ack_code(ack: bytes) -> str | None:
    """MSA-1 of an ACK (AA, AE, AR...), None when there is no MSA segment."""
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA") and len(segment) > 4:
            return segment[4:].split(segment[3:4])[0].decode("ascii", "replace")
    return None


class MllpClient:
    """``async with MllpClient(host, port) as c: ack = await c.send(raw)``."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: HL7StreamWriter | None = None

    async def __aenter__(self) -> MllpClient:
        self._reader, self._writer = await asyncio.wait_for(
            open_hl7_connection(self.host, self.port, limit=16 * 1024 * 1024), self.timeout
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None

    async def send(self, raw: bytes) -> bytes:
        """Send one framed message and wait for the framed answer."""
        if self._reader is None or self._writer is None:
            raise RuntimeError("the client is not connected")
        self._writer.writeblock(raw)
        await self._writer.drain()
        ack = await asyncio.wait_for(read_frame(self._reader), self.timeout)
        if ack is None:
            raise FramingError("the server closed the connection without an ACK")
        return ack
