"""What each router declares in /openapi.json beyond its 200: the error bodies it really sends.

The routes return raw ``Response`` objects, so FastAPI alone would document a bare
``application/json`` 200 (and a 422 ``HTTPValidationError`` that is never sent); clients
and contract tests (tests/fuzz/test_openapi_contract.py) read these declarations instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AUTH_RESPONSES", "FHIR_RESPONSES", "HL7_RESPONSES"]

FHIR_JSON = "application/fhir+json"

OPERATION_OUTCOME: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
RESOURCE: dict[str, Any] = {
    "title": "Resource",
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
}
OAUTH_ERROR: dict[str, Any] = {
    "title": "OAuthError",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def _fhir(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


_OUTCOME_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": _fhir("OperationOutcome naming the element or parameter at fault", OPERATION_OUTCOME),
    503: _fhir("OperationOutcome: the data store is unavailable; retry later", OPERATION_OUTCOME),
}

#: The FHIR REST routers: a resource, Bundle or OperationOutcome (all FHIR JSON).
FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _fhir("A resource, a Bundle, or an OperationOutcome", RESOURCE),
    201: _fhir("Created: the resource as stored (or an OperationOutcome)", RESOURCE),
    304: {"description": "Not modified (If-None-Match, If-Modified-Since)"},
    **_OUTCOME_ERRORS,
}

#: POST /hl7/v2 answers an ER7 ACK; the dead-letter routes answer FHIR-style JSON.
HL7_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The HL7 ACK (ingest), or dead-letter records as JSON",
        "content": {
            "x-application/hl7-v2+er7": {"schema": {"type": "string"}},
            FHIR_JSON: {"schema": {"type": "object"}},
        },
    },
    **_OUTCOME_ERRORS,
}

#: SMART/OAuth endpoints: RFC 6749 JSON errors, HTML login pages, redirects.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON (tokens, metadata) or the HTML login page",
        "content": {"application/json": {}, "text/html": {}},
    },
    302: {"description": "Redirect to the client (authorization response or error)"},
    303: {"description": "Redirect after the login form"},
    "4XX": {
        "description": "RFC 6749 error (JSON) or the login page with the error (HTML)",
        "content": {"application/json": {"schema": OAUTH_ERROR}, "text/html": {}},
    },
    503: _fhir("OperationOutcome: the data store is unavailable; retry later", OPERATION_OUTCOME),
}
