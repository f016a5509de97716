"""HL7 v2 over HTTP: ingest one message, list and reprocess the dead letters.

Route names (for the role guard): ``hl7_ingest`` (POST /hl7/v2), ``hl7_failed_list``
(GET /hl7/v2/failed), ``hl7_failed_read`` (GET /hl7/v2/failed/{id}) and
``hl7_failed_reprocess`` (POST /hl7/v2/failed/{id}/reprocess); the last three are
meant for the IT administrator role. ``{id}`` is the inbox key
``<MSH-3>|<MSH-4>|<MSH-10>``, URL-encoded.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from fhir_server.api import auditing
from fhir_server.api.access import require_operation
from fhir_server.api.http import json_response, media_type, read_body
from fhir_server.api.openapi_responses import HL7_RESPONSES
from fhir_server.hl7 import inbox
from fhir_server.hl7.inbox import KIND
from fhir_server.hl7.processor import AlreadyProcessed, Hl7Processor
from fhir_server.resources import errors

router = APIRouter(prefix="/hl7/v2", tags=["HL7 v2"], responses=HL7_RESPONSES)
# The HL7 routes are outside /fhir: each one names the operation it needs.

HL7_MEDIA_TYPES = ("x-application/hl7-v2+er7", "application/hl7-v2+er7", "text/plain")
_ACK_MEDIA_TYPE = "x-application/hl7-v2+er7"
_STATUSES = ("failed", "received", "processed")


def _processor(request: Request) -> Hl7Processor:
    processor: Hl7Processor = request.app.state.hl7
    return processor


@router.post(
    "",
    name="hl7_ingest",
    summary="Ingest one HL7 v2 message; returns the ACK",
    dependencies=[require_operation("hl7-ingest")],
)
async def ingest(request: Request) -> Response:
    media = media_type(request)
    if media not in HL7_MEDIA_TYPES:
        raise errors.FhirError(
            415, "not-supported", f"Content-Type must be one of {', '.join(HL7_MEDIA_TYPES)}"
        )
    raw = await read_body(request)
    ack = await _processor(request).handle(raw, source="http")
    return Response(
        ack.text.encode("utf-8"),
        media_type=f"{_ACK_MEDIA_TYPE}; charset=utf-8",
        headers={"X-HL7-Ack-Code": ack.code},
    )


@router.get(
    "/failed",
    name="hl7_failed_list",
    summary="Dead letters: messages not applied",
    dependencies=[require_operation("hl7")],
)
async def failed_list(
    request: Request,
    status: str = Query("failed", description="failed, or received (stuck) or processed"),
    after: str | None = Query(None, description="the last id of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    if status not in _STATUSES:
        raise errors.bad_request(f"status must be one of {', '.join(_STATUSES)}", "status")
    store = _processor(request).store
    rows = await store.find_records(KIND, where={"status": status}, after=after, limit=limit)
    total = await store.count_records(KIND, where={"status": status})
    body: dict[str, Any] = {
        "total": total,
        "items": [inbox.summary(key, doc) for key, doc in rows],
        "next": rows[-1][0] if len(rows) == limit else None,
    }
    return json_response(body)


@router.get(
    "/failed/{message_id:path}",
    name="hl7_failed_read",
    summary="One stored message",
    dependencies=[require_operation("hl7")],
)
async def failed_read(request: Request, message_id: str) -> Response:
    doc = await _processor(request).store.get_record(KIND, message_id)
    if doc is None:
        raise errors.not_found("no HL7 message is stored under this id")
    # The raw message carries patient data: the interface team may read it, audited.
    auditing.trail(request).add(
        "operation", status=200, operation="hl7-message-read", query=auditing.raw_query(request)
    )
    await auditing.commit(request)
    return json_response(
        {**inbox.summary(message_id, doc), "ack": doc.get("ack"), "text": doc.get("text")}
    )


@router.post(
    "/failed/{message_id:path}/reprocess",
    name="hl7_failed_reprocess",
    summary="Run a stored message again after a fix",
    dependencies=[require_operation("hl7")],
)
async def failed_reprocess(request: Request, message_id: str) -> Response:
    try:
        ack = await _processor(request).reprocess(message_id)
    except AlreadyProcessed:
        raise errors.conflict("this message was processed already") from None
    if ack is None:
        raise errors.not_found("no HL7 message is stored under this id")
    return json_response({"id": message_id, "ack_code": ack.code, "ack": ack.text})
