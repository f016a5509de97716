"""Request id, one JSON access line, slow-request log and HTTP metrics for every request.

A plain ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer streaming bodies and
costs a task per request). The route template and path parameters are read from the
scope after the router filled them in, so labels are templates, never raw paths.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.observability import labels
from fhir_server.observability.logs import get_logger, request_id_var
from fhir_server.observability.metrics import Metrics
from fhir_server.resources.meta import new_id

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_UNLOGGED = frozenset({"/metrics", "/health/live", "/health/ready"})

access_log = get_logger("access")
slow_log = get_logger("slow")


def accepted_request_id(raw: bytes | None) -> str:
    """The caller's id when it is a short safe token, else a new one (no log injection)."""
    if raw:
        text = raw.decode("latin-1")
        if _SAFE_ID.match(text):
            return text
    return new_id().replace("-", "")


def _principal_fields(scope: Scope) -> dict[str, Any]:
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    if principal is None:
        return {}
    return {
        "user": getattr(principal, "subject", None),
        "client_id": getattr(principal, "client_id", None),
    }


class ObservabilityMiddleware:
    """Wraps the app; ``slow_ms`` is the slow-request threshold in milliseconds."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, slow_ms: float) -> None:
        self.app = app
        self.metrics = metrics
        self.slow_ms = slow_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = next((v for k, v in scope.get("headers", ()) if k == _REQUEST_ID_KEY), None)
        request_id = accepted_request_id(raw_id)
        id_header = (_REQUEST_ID_KEY, request_id.encode())
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != _REQUEST_ID_KEY
                ]
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        self.metrics.active_requests.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.active_requests.dec()
            self._record(scope, status=status, seconds=time.perf_counter() - started)
            request_id_var.reset(token)

    def _record(self, scope: Scope, *, status: int, seconds: float) -> None:
        template = labels.route_template(scope)
        interaction = labels.interaction(scope["method"], template)
        rtype = labels.resource_type(scope)
        status_label = str(status)
        self.metrics.requests.labels(interaction, rtype, status_label).inc()
        self.metrics.request_latency.labels(interaction, rtype).observe(seconds)
        if status >= 400:
            self.metrics.errors.labels(status_label).inc()
        if template in _UNLOGGED and status < 400:
            return
        level = logging.WARNING if status >= 500 else logging.INFO
        slow = seconds * 1000 >= self.slow_ms
        if not slow and not access_log.isEnabledFor(level):
            return  # no log line will be written: build none of its fields
        duration_ms = round(seconds * 1000, 2)
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": template or "unmatched",
            "interaction": interaction,
            "resource_type": rtype,
            "status": status,
            "duration_ms": duration_ms,
            **_principal_fields(scope),
        }
        access_log.log(level, "request", extra={"fields": fields})
        if slow:
            slow_log.warning(
                "slow_request",
                extra={
                    "fields": {
                        "route": template or "unmatched",
                        "interaction": interaction,
                        "resource_type": rtype,
                        "query_params": labels.query_shape(scope.get("query_string", b"")),
                        "duration_ms": duration_ms,
                        "threshold_ms": self.slow_ms,
                    }
                },
            )
