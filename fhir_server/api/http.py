"""Request parsing and response building shared by the FHIR routes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from fhir_server.api.errors import FHIR_JSON, operation_outcome
from fhir_server.api.limits import check_document, limits_of
from fhir_server.digits import non_negative_int
from fhir_server.resources import errors, exact_json
from fhir_server.resources.errors import Issue
from fhir_server.resources.meta import http_date
from fhir_server.resources.offload import large_request
from fhir_server.resources.planning import Outcome
from fhir_server.resources.requests import etag
from fhir_server.storage.base import StoredResource

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_XML_HINTS = ("xml",)


def base_url(request: Request) -> str:
    configured = getattr(request.app.state, "base_url", None)
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def check_accept(request: Request) -> None:
    """JSON only: a client that wants XML (Accept or ``_format``) gets 406."""
    fmt = request.query_params.get("_format")
    if fmt is not None and any(h in fmt.lower() for h in _XML_HINTS):
        raise errors.FhirError(406, "not-supported", "only JSON is supported (_format)")
    accept = request.headers.get("accept")
    if not accept:
        return
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if any(o in _JSON_TYPES or o in ("*/*", "application/*") for o in offered):
        return
    if any(o.endswith("json") for o in offered):
        return
    raise errors.FhirError(406, "not-supported", "only application/fhir+json is supported")


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as the declared or streamed size passes the limit:
    a chunked body without Content-Length is never buffered past it."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    declared_size = non_negative_int(declared, limit=limit + 1) if declared is not None else None
    if declared_size is not None and declared_size > limit:
        raise errors.FhirError(413, "too-costly", f"request body over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.FhirError(413, "too-costly", f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, patch: bool = False, optional: bool = False) -> Any:
    """The JSON body (size-limited); ``optional``: None when there is no body at all."""
    body = await read_body(request)
    if optional and not body:
        return None
    media = media_type(request)
    accepted = ("application/json-patch+json",) if patch else _JSON_TYPES
    if media not in accepted:
        raise errors.FhirError(
            415, "not-supported", f"Content-Type must be one of {', '.join(accepted)}"
        )
    large = len(body) > request.app.state.settings.offload_bytes
    try:
        # A large body's parse (milliseconds) in a thread. The GIL can change hands only at
        # the parse's Python number hooks: a body without numbers still holds it throughout.
        document = (
            await asyncio.to_thread(exact_json.loads, body) if large else exact_json.loads(body)
        )
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(
            f"malformed JSON at character {exc.pos}", code="structure"
        ) from None
    # Bounded before any model validation, whose cost grows with every element.
    await check_document(document, limits_of(request), name="patch" if patch else "body")
    if large:
        large_request.set(True)  # its writes are checked off the event loop
    return document


def json_response(
    content: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        exact_json.dumps(content), status_code=status, media_type=FHIR_JSON, headers=headers
    )


def version_headers(stored: StoredResource, *, location_base: str | None = None) -> dict[str, str]:
    headers = {"ETag": etag(stored.version), "Last-Modified": http_date(stored.last_updated)}
    if location_base is not None:
        headers["Location"] = (
            f"{location_base}/{stored.resource_type}/{stored.id}/_history/{stored.version}"
        )
    return headers


def prefer_return(request: Request) -> str:
    for part in request.headers.get("prefer", "").split(";"):
        for token in part.split(","):
            key, _, value = token.strip().partition("=")
            if key == "return" and value in ("minimal", "representation", "OperationOutcome"):
                return value
    return "representation"


def prefer_strict(request: Request) -> bool:
    return "handling=strict" in request.headers.get("prefer", "").replace(" ", "")


def write_response(request: Request, outcome: Outcome) -> Response:
    """The answer to create/update/patch/delete, shaped by the Prefer header."""
    stored = outcome.stored
    headers: dict[str, str] = {}
    if stored is not None and not stored.deleted:
        headers = version_headers(
            stored, location_base=base_url(request) if outcome.status in (200, 201) else None
        )
    if outcome.status == 204 or stored is None or stored.deleted:
        if stored is not None and stored.deleted and outcome.message is None:
            headers["ETag"] = etag(stored.version)
        return Response(status_code=204, headers=headers)
    preference = prefer_return(request)
    if preference == "minimal":
        return Response(status_code=outcome.status, headers=headers)
    if preference == "OperationOutcome":
        text = outcome.message or ("created" if outcome.created else "ok")
        issue = Issue("information", "informational", text)
        return json_response(operation_outcome([issue]), status=outcome.status, headers=headers)
    return Response(stored.body, status_code=outcome.status, media_type=FHIR_JSON, headers=headers)
