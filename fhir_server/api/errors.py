"""The one place that turns failures into OperationOutcome responses (never a stack trace)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from fhir_server.api.access import identify_caller
from fhir_server.api.auditing import is_audited, record_failure
from fhir_server.api.targets import check_target, fhir_segments
from fhir_server.observability.labels import route_template
from fhir_server.resources import errors
from fhir_server.resources.errors import FhirError, Issue
from fhir_server.storage.base import StoreFull, StoreUnavailable

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("medicore.api")

_HTTP_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    499: "incomplete",
    503: "transient",
}


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for issue in issues:
        item: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "diagnostics": issue.diagnostics,
        }
        if issue.expression:
            item["expression"] = list(issue.expression)
        out.append(item)
    return {"resourceType": "OperationOutcome", "issue": out}


def outcome_response(
    status: int, issues: list[Issue], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(operation_outcome(issues)),
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


async def _fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    await record_failure(request, exc.status, reason=exc.code)
    return outcome_response(exc.status, exc.issues, exc.headers or None)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """A store outage met outside the service layer's guard (HL7 dead letters, tokens)."""
    return await _fhir_error(
        request, errors.unavailable("the data store is unavailable; retry later")
    )


async def _store_full(request: Request, exc: Exception) -> Response:
    """The same for a full store: 507, the write was not made."""
    return await _fhir_error(request, errors.store_failure(exc, ""))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    path = request.url.path
    if status in (404, 405) and fhir_segments(path) is not None and is_audited(path):
        # No route took it: the caller is still authenticated first (401), then told
        # about a type or operation the server does not have, as on routed paths.
        try:
            await identify_caller(request)
            check_target(request)
        except FhirError as refusal:
            return await _fhir_error(request, refusal)
    await record_failure(request, status, reason=_HTTP_CODES.get(status, "exception"))
    message = {
        404: "no such endpoint",
        405: "this interaction is not supported here",
    }.get(status, str(exc.detail) if isinstance(exc.detail, str) else "request failed")
    return outcome_response(
        status, [Issue("error", _HTTP_CODES.get(status, "exception"), message)], exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    await record_failure(request, 400, reason="invalid")
    issues = [
        Issue(
            "error",
            "invalid",
            f"invalid request {'.'.join(str(p) for p in err.get('loc', ()))}",
            (".".join(str(p) for p in err.get("loc", ())),),
        )
        for err in exc.errors()
    ] or [Issue("error", "invalid", "invalid request")]
    return outcome_response(400, issues)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Only the exception type is logged: its text could carry patient data.
    log.error(
        "unhandled error",
        extra={"error_type": type(exc).__name__, "path_template": request.scope.get("route_path")},
    )
    await record_failure(request, 500, reason="exception")
    return outcome_response(
        500, [Issue("fatal", "exception", "internal error; the request was not completed")]
    )


# nginx's "client closed request": the client's doing, counted as a client error.
CLIENT_CLOSED = 499


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    """The client hung up before its request was read: one line, no traceback; nobody is
    left to read the answer, which only feeds the access log and the metrics."""
    log.info(
        "client disconnected before its request was complete",
        extra={
            "fields": {
                "method": request.method,
                "route": route_template(request.scope) or "unmatched",
            }
        },
    )
    await record_failure(request, CLIENT_CLOSED, reason="incomplete")
    return Response(status_code=CLIENT_CLOSED)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FhirError, _fhir_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(StoreFull, _store_full)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
