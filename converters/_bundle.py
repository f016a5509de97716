"""Transaction Bundle assembly: conditional writes keyed on business identifiers, Provenance."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import quote

__all__ = ["MESSAGE_SYSTEM", "BundleBuilder", "search_token"]

MESSAGE_SYSTEM = "urn:medicore:hl7v2:message"
_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-5d7e-9f10-4c2b7a9e1d35")
_ACTIVITY_SYSTEM = (
    "http://hl7.org/fhir/uv/v2mappings/CodeSystem/provenance-activity-type-v2-to-fhir"
)


def _escape(value: str) -> str:
    """FHIR search escaping for token parts (``\\``, ``|``, ``,``, ``$``)."""
    for ch in ("\\", "|", ",", "$"):
        value = value.replace(ch, "\\" + ch)
    return value


def search_token(ident: dict[str, Any]) -> str:
    """``identifier=system|value``, escaped and URL-encoded, for conditional URLs."""
    system = quote(_escape(ident.get("system", "")), safe=":/.-_~")
    value = quote(_escape(ident["value"]), safe=".-_~")
    return f"identifier={system}|{value}"


def _urn(resource_type: str, ident: dict[str, Any]) -> str:
    key = f"{resource_type}|{ident.get('system', '')}|{ident['value']}"
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, key)}"


class BundleBuilder:
    """Collects entries; every resource gets a deterministic ``urn:uuid`` from its key."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}

    def put(self, resource: dict[str, Any], key: dict[str, Any]) -> str:
        """Conditional update (create or replace) of ``resource`` keyed on ``key``."""
        rtype = resource["resourceType"]
        urn = _urn(rtype, key)
        self._entries[urn] = {
            "fullUrl": urn,
            "resource": resource,
            "request": {"method": "PUT", "url": f"{rtype}?{search_token(key)}"},
        }
        return urn

    def create(self, resource: dict[str, Any], key: dict[str, Any]) -> str:
        """Conditional create: written only when nothing carries ``key`` yet."""
        rtype = resource["resourceType"]
        urn = _urn(rtype, key)
        if urn not in self._entries:
            self._entries[urn] = {
                "fullUrl": urn,
                "resource": resource,
                "request": {
                    "method": "POST",
                    "url": rtype,
                    "ifNoneExist": search_token(key),
                },
            }
        return urn

    def patch(self, resource_type: str, key: dict[str, Any], operations: list[Any]) -> str:
        """Conditional JSON Patch (RFC 6902, carried in a Binary as FHIR R4 prescribes)."""
        urn = _urn(resource_type, key)
        data = base64.b64encode(json.dumps(operations).encode()).decode()
        self._entries[urn] = {
            "fullUrl": urn,
            "resource": {
                "resourceType": "Binary",
                "contentType": "application/json-patch+json",
                "data": data,
            },
            "request": {"method": "PATCH", "url": f"{resource_type}?{search_token(key)}"},
        }
        return urn

    def provenance(
        self,
        *,
        message_ref: str,
        message_type: str,
        application: str,
        facility: str,
        recorded: str,
        occurred: str | None = None,
    ) -> str:
        """A Provenance targeting every entry so far; its id derives from the message."""
        targets = [{"reference": urn} for urn in self._entries]
        prov_id = str(uuid.uuid5(_NAMESPACE, f"Provenance|{message_ref}"))
        agent: dict[str, Any] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "author",
                    }
                ]
            },
            "who": {
                "type": "Device",
                "identifier": {"system": "urn:medicore:hl7v2:application", "value": application},
                "display": application,
            }
            if application
            else {"type": "Device", "display": "sending application not named in MSH-3"},
        }
        if facility:
            agent["onBehalfOf"] = {
                "type": "Organization",
                "identifier": {"system": "urn:medicore:hl7v2:facility", "value": facility},
                "display": facility,
            }
        resource: dict[str, Any] = {
            "resourceType": "Provenance",
            "id": prov_id,
            "target": targets,
            "recorded": recorded,
            "activity": {
                "coding": [
                    {
                        "system": _ACTIVITY_SYSTEM,
                        "code": "v2-fhir-transformation",
                        "display": "V2 To FHIR Transformation",
                    }
                ],
                "text": message_type,
            },
            "agent": [agent],
            # The server accepts changes to final records (e.g. a corrected result) only
            # with a Provenance that says why: here, the sending system's message.
            "reason": [{"text": f"update received as HL7 v2 {message_type}"}],
            "entity": [
                {
                    "role": "source",
                    "what": {
                        "identifier": {"system": MESSAGE_SYSTEM, "value": message_ref},
                        "display": f"HL7 v2 {message_type} message",
                    },
                }
            ],
        }
        if occurred:
            resource["occurredDateTime"] = occurred
        urn = f"urn:uuid:{prov_id}"
        self._entries[urn] = {
            "fullUrl": urn,
            "resource": resource,
            "request": {"method": "PUT", "url": f"Provenance/{prov_id}"},
        }
        return urn

    def bundle(self) -> dict[str, Any]:
        entries = [
            {**entry, "resource": without_empty(entry["resource"])}
            for entry in self._entries.values()
        ]
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def without_empty(value: Any) -> Any:
    """``value`` without empty strings, objects and lists, at any depth: FHIR forbids them
    (ele-1), and an empty HL7 component (``^^UCUM``) must not make a whole message fail."""
    if isinstance(value, dict):
        pruned = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ("", {}, [], None)}
    if isinstance(value, list):
        items = [without_empty(v) for v in value]
        return [v for v in items if v not in ("", {}, [], None)]
    return value
