"""Typed access to the per-app services stored on ``app.state``."""

from __future__ import annotations

from fastapi import Request

from fhir_server.resources.service import ResourceService

# Parameters that shape the HTTP exchange rather than select resources.
TRANSPORT_PARAMS = frozenset({"_format", "_pretty"})


def service(request: Request) -> ResourceService:
    svc: ResourceService = request.app.state.service
    return svc


def search_params(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in items if k not in TRANSPORT_PARAMS]
