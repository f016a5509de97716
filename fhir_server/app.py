"""``create_app(settings)``: wiring only."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from fhir_server.api import capability, operations, rest
from fhir_server.api.docs import install_docs
from fhir_server.api.errors import install_error_handlers
from fhir_server.audit_indexer import supervise
from fhir_server.audit_setup import check_audit_allowed, index_audit_forever, load_audit_key
from fhir_server.hl7 import Hl7Settings, install_hl7, mllp_readiness
from fhir_server.observability import (
    MeteredStore,
    Metrics,
    ObservabilitySettings,
    install_observability,
)
from fhir_server.resources.offload import CheckRecipe, WriteChecks
from fhir_server.resources.service import ResourceService
from fhir_server.security import install_security, seed_demo_accounts
from fhir_server.settings import Settings
from fhir_server.storage import Store, store_from_uri

log = logging.getLogger("medicore.audit")
_NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def build_service(settings: Settings, store: Store) -> ResourceService:
    """The service as configured (search definitions, profiles): the server and the
    operator commands that write (``medicore hl7 reprocess``) must validate alike."""
    recipe = CheckRecipe(
        tuple(settings.profiles_dirs),
        mandatory=settings.mandatory_profiles,
        reject_unknown_profiles=settings.reject_unknown_profiles,
        search_parameters_dirs=tuple(settings.search_parameters_dirs),
        timezone=settings.timezone,
    )
    registry, validator = recipe.registry(), recipe.validator()
    service = ResourceService(
        store, registry, validator=validator, max_count=settings.max_page_size
    )
    service.planner.checks = WriteChecks(
        validator,
        registry,
        recipe=recipe,
        workers=settings.cpu_workers,
        offload_bytes=settings.offload_bytes,
    )
    return service


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    hl7: Hl7Settings | None = None,
    demo: bool = False,
    observability: ObservabilitySettings | None = None,
    mllp_socket: socket.socket | None = None,
) -> FastAPI:
    """``mllp_socket``: a listening socket to accept MLLP on instead of binding the port
    (a worker of a supervised server shares its supervisor's)."""
    settings = settings or Settings()
    check_audit_allowed(settings)
    if isinstance(store, MeteredStore):
        the_store, metrics = store, store.metrics
    else:
        metrics = Metrics()
        the_store = MeteredStore(
            store
            or store_from_uri(
                settings.store,
                mongo_database=settings.mongo_database,
                audit_key=load_audit_key(settings),
                sqlite_max_pages=settings.sqlite_max_pages,
            ),
            metrics=metrics,
        )
    service = build_service(settings, the_store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_store.open()
        if demo:
            await seed_demo_accounts(the_store)
        indexing = _audit_indexing(settings, the_store, service)
        indexer = asyncio.create_task(indexing) if indexing is not None else None
        try:
            yield
        finally:
            if indexer is not None:
                indexer.cancel()
            try:
                if indexer is not None:
                    await indexer
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # it failed earlier: say so, and still close the store
                log.warning("audit indexing had stopped (%s)", type(exc).__name__)
            finally:
                service.planner.checks.close()
                await the_store.close()

    app = FastAPI(
        title="MediCore FHIR",
        version="0.1.0",
        description="FHIR R4 server: Patient, Encounter, MedicationRequest, Observation, "
        "Provenance (full REST) and AuditEvent (read/search).",
        lifespan=lifespan,
        # Metrics and logs are our own (Prometheus, JSON lines); FastAPI's OpenTelemetry
        # hooks would otherwise look for a configured provider on every request.
        telemetry=_NO_OPENTELEMETRY,
        docs_url=None,  # served by install_docs from the package's own files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.registry = service.registry
    app.state.base_url = settings.base_url
    app.state.service = service
    install_error_handlers(app)
    install_docs(app)
    app.include_router(capability.router)
    install_security(app, settings, the_store)
    app.include_router(operations.router)  # before rest: "$validate" is not an id
    app.include_router(rest.router)
    install_hl7(app, settings, hl7=hl7, sock=mllp_socket)
    install_observability(app, observability, metrics=metrics)
    app.state.hl7.on_ack = metrics.observe_hl7
    app.state.hl7.on_control_id_reused = metrics.hl7_control_id_reused.inc
    service.audit_batcher.timer = metrics.time_audit_write

    async def measure_audit_backlog() -> None:
        metrics.audit_index_backlog.set(await the_store.audit_backlog())

    metrics.add_refresher(measure_audit_backlog)
    app.state.health.register("mllp", mllp_readiness(app))
    return app


def _audit_indexing(
    settings: Settings, store: Store, service: ResourceService
) -> Coroutine[None, None, None] | None:
    if settings.audit_indexer == "process":
        return supervise(settings)
    if settings.audit_indexer == "inline":
        return index_audit_forever(
            store, registry=service.registry, interval=settings.audit_index_interval
        )
    return None  # "external": the supervisor runs it once for all workers
