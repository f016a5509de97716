"""HL7 v2 intake in the server: inbox, processing, MLLP listener, HTTP routes, CLI.

Wiring (the app factory and ``medicore serve`` call these)::

    install_hl7(app, settings, hl7=Hl7Settings(...))   routes + start/stop with the app
    start_hl7(app) / stop_hl7(app)                      what install_hl7 hooks into lifespan

Processing a message never raises to the transport: every outcome is an ACK
(AA committed, AE understood but not applied, AR rejected), see ``processor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from fhir_server.hl7.mllp import MllpListener
from fhir_server.hl7.processor import Ack, AlreadyProcessed, AuditFactory, Hl7Processor
from fhir_server.hl7.settings import Hl7Settings
from fhir_server.resources.auditing import AuditTrail, Requestor
from fhir_server.settings import Settings

__all__ = [
    "Ack",
    "AlreadyProcessed",
    "Hl7Processor",
    "Hl7Settings",
    "MllpListener",
    "hl7_audit",
    "install_hl7",
    "mllp_readiness",
    "start_hl7",
    "stop_hl7",
]

log = logging.getLogger("medicore.hl7")


def install_hl7(
    app: FastAPI,
    settings: Settings,
    *,
    hl7: Hl7Settings | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Add the ``/hl7/v2`` routes and run the listener and recovery with the app;
    ``sock`` is a listening socket to accept on instead of binding the MLLP port."""
    from fhir_server.api.hl7_endpoints import router  # the router imports this package

    hl7_settings = hl7 or Hl7Settings()
    base_url = settings.served_base
    app.state.hl7_settings = hl7_settings
    app.state.hl7_mllp_host = hl7_settings.mllp_host or settings.host
    app.state.hl7 = Hl7Processor(
        app.state.service,
        settings=hl7_settings,
        base_url=base_url,
        audit=hl7_audit(settings),
        zone=settings.zone,
    )
    app.state.hl7_listener = None
    app.state.hl7_recovery = None
    app.state.hl7_socket = sock
    app.include_router(router)

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(the_app: Any) -> AsyncIterator[Any]:
        async with inner(the_app) as state:
            await start_hl7(app)
            try:
                yield state
            finally:
                await stop_hl7(app)

    app.router.lifespan_context = lifespan


def hl7_audit(settings: Settings) -> AuditFactory:
    """AuditEvents for the writes of each message, the sending system as the requestor."""

    def trail(sender: str | None) -> AuditTrail:
        return AuditTrail(
            Requestor(client_id=f"hl7v2:{sender or 'unknown'}"),
            server_id=settings.server_id,
            enabled=settings.audit_enabled,
        )

    return trail


async def start_hl7(app: FastAPI) -> None:
    """Open the MLLP port (unless 0) and re-run messages a killed process left unfinished."""
    settings: Hl7Settings = app.state.hl7_settings
    processor: Hl7Processor = app.state.hl7
    if settings.mllp_port:
        listener = MllpListener(
            processor,
            host=app.state.hl7_mllp_host,
            port=settings.mllp_port,
            max_message_bytes=settings.mllp_max_message_bytes,
            idle_timeout=settings.mllp_idle_timeout,
            sock=app.state.hl7_socket,
        )
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None:
            listener.on_connections = metrics.mllp_connections.set
        try:
            await listener.start()
        except OSError as exc:
            # HTTP intake keeps working; the readiness of MLLP shows in the log and state.
            log.error("MLLP listener could not bind port %d (%s)", settings.mllp_port, exc)
        else:
            app.state.hl7_listener = listener
    if settings.hl7_recover_on_startup:
        app.state.hl7_recovery = asyncio.create_task(_recover(processor))


def mllp_readiness(app: FastAPI) -> Callable[[], Awaitable[str | None]]:
    """Readiness: with an MLLP port configured, the listener must be accepting."""

    async def check() -> str | None:
        settings: Hl7Settings = app.state.hl7_settings
        if not settings.mllp_port:
            return "off"
        if app.state.hl7_listener is None:
            from fhir_server.observability.health import CheckFailed

            raise CheckFailed(f"MLLP listener is not accepting on port {settings.mllp_port}")
        return f"accepting on port {settings.mllp_port}"

    return check


async def _recover(processor: Hl7Processor) -> None:
    try:
        await processor.recover()
    except Exception as exc:  # retried at the next start; messages stay "received"
        log.error("hl7: start-up recovery stopped (%s)", type(exc).__name__)


async def stop_hl7(app: FastAPI) -> None:
    """Stop accepting, let messages in progress finish, stop recovery."""
    listener: MllpListener | None = app.state.hl7_listener
    if listener is not None:
        await listener.stop()
        app.state.hl7_listener = None
    recovery: asyncio.Task[None] | None = app.state.hl7_recovery
    if recovery is not None:
        recovery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recovery
        app.state.hl7_recovery = None
