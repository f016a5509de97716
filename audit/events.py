"""One access, described once, turned into an R4 AuditEvent an auditor can search.

The shape follows IHE Basic Audit Log Patterns (BALP, https://profiles.ihe.net/ITI/BALP/,
profiles ``IHE.BasicAudit.Create/Read/Update/Delete/Query`` and their ``Patient*``
variants) and the R4 AuditEvent definition (http://hl7.org/fhir/R4/auditevent.html):

- ``type`` is ``audit-event-type#rest`` and ``subtype`` the ``restful-interaction`` code
  for every FHIR interaction (BALP "type = rest", "subtype 1..").  Five non-REST kinds:
  ``login`` is DICOM 110114 "User Authentication" / 110122 "Login" (as the R4
  ``example-login``), ``token-issue`` is 110114 / ``urn:ihe:event-type-code#ITI-71``
  "Get Access Token" (BALP ``IHE.IUA.71``), ``token-revoke`` and ``token-introspect``
  (RFC 7009, RFC 7662: no BALP or DICOM code exists) are 110114 with MediCore subtype
  codes, ``hl7-ingest`` is DICOM 110107 "Import" with a MediCore subtype code.
- ``action``: C create/hl7-ingest; R read, vread, history (data flows out); U update,
  patch; D delete; E search (BALP Query: ``action = #E``), operation, batch,
  transaction, login, token-issue, token-revoke, token-introspect.
- ``outcome`` (R4 ``audit-event-outcome``): 0 for any status below 400; 4 "Minor failure"
  for 4xx (R4: "often equivalent to an HTTP 400 response"), which includes 401/403 and
  any request flagged ``denied``; 8 "Serious failure" for 5xx (R4: "often equivalent to
  an HTTP 500 response").  12 "Major failure" (the system died) never follows from an
  HTTP status, so the builder never emits it.  Denials are told apart from other 4xx by
  ``outcomeDesc`` starting with ``"denied: "``, followed by ``HTTP <status> <phrase>``
  and the record's PHI-free description.
- ``agent``: BALP's client / server / user slices.  The client (app) agent carries the
  network address (BALP: ``agent[client].network 1..1``, users are "not network
  devices"); its DICOM type follows BALP's data-flow convention: Source Role ID 110153
  for create/update/patch/search/operation/batch/transaction/ingest/login/tokens,
  Destination Role ID 110152 for read/vread/history, and for delete BALP's
  Application 110150 with the server as ``provenance-participant-type#custodian``.
  When a user is known, a user agent (``v3-ParticipationType`` IRCP for reads and
  queries, AUT for writes, BALP "DataSources") is the requestor; otherwise the client
  is.  Role and purposeOfUse (``v3-ActReason`` codes from the token) sit on the
  requestor.  No agent carries a ``name`` or ``display``: who is an identifier only.
- ``source.observer`` is the server, typed ``security-source-type#4`` Application Server.
- ``entity``: one per patient concerned (``audit-entity-type#1`` Person,
  ``object-role#1`` Patient, BALP ``entity[patient]``), the data (``#2`` System Object,
  ``object-role#4`` Domain Resource, reference with ``_history/<version>`` when known,
  BALP ``entity[data]``), the query (``object-role#24`` Query, ``query`` = base64 of
  the raw request, BALP ``entity[query]``), and the X-Request-Id (BALP
  ``BasicAuditEntityType#XrequestId``).

Deliberate deviation: BALP PatientQuery asks for one AuditEvent per patient in a search
result; MediCore records one AuditEvent naming every patient (issue 6: "a search that
returns several patients' data names each patient"), which is searchable by ``patient``
just the same and keeps a read to a single durable write.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Any

__all__ = [
    "CLIENT_ID_SYSTEM",
    "ROLE_SYSTEM",
    "SUBTYPE_SYSTEM",
    "USER_ID_SYSTEM",
    "AccessRecord",
    "Interaction",
    "build_audit_event",
    "fhir_instant",
    "outcome_code",
]

MEDICORE_BASE = "https://fhir.medicore.example"
USER_ID_SYSTEM = f"{MEDICORE_BASE}/sid/user"
CLIENT_ID_SYSTEM = f"{MEDICORE_BASE}/sid/client"
ROLE_SYSTEM = f"{MEDICORE_BASE}/CodeSystem/staff-role"
SUBTYPE_SYSTEM = f"{MEDICORE_BASE}/CodeSystem/audit-subtype"

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
IHE_EVENT = "urn:ihe:event-type-code"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"


class Interaction(StrEnum):
    """Every kind of access that leaves an AuditEvent."""

    CREATE = "create"
    READ = "read"
    VREAD = "vread"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    SEARCH = "search"
    HISTORY_INSTANCE = "history-instance"
    HISTORY_TYPE = "history-type"
    HISTORY_SYSTEM = "history-system"
    OPERATION = "operation"
    BATCH = "batch"
    TRANSACTION = "transaction"
    HL7_INGEST = "hl7-ingest"
    TOKEN_ISSUE = "token-issue"
    TOKEN_REVOKE = "token-revoke"
    TOKEN_INTROSPECT = "token-introspect"
    LOGIN = "login"


_ACTION: dict[Interaction, str] = {
    Interaction.CREATE: "C",
    Interaction.READ: "R",
    Interaction.VREAD: "R",
    Interaction.UPDATE: "U",
    Interaction.PATCH: "U",
    Interaction.DELETE: "D",
    Interaction.SEARCH: "E",
    Interaction.HISTORY_INSTANCE: "R",
    Interaction.HISTORY_TYPE: "R",
    Interaction.HISTORY_SYSTEM: "R",
    Interaction.OPERATION: "E",
    Interaction.BATCH: "E",
    Interaction.TRANSACTION: "E",
    Interaction.HL7_INGEST: "C",
    Interaction.TOKEN_ISSUE: "E",
    Interaction.TOKEN_REVOKE: "E",
    Interaction.TOKEN_INTROSPECT: "E",
    Interaction.LOGIN: "E",
}

_REST_TYPE = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
_AUTH_TYPE = {"system": DCM, "code": "110114", "display": "User Authentication"}
_IMPORT_TYPE = {"system": DCM, "code": "110107", "display": "Import"}
_SPECIAL_TYPE_SUBTYPE: dict[Interaction, tuple[dict[str, str], dict[str, str]]] = {
    Interaction.LOGIN: (_AUTH_TYPE, {"system": DCM, "code": "110122", "display": "Login"}),
    Interaction.TOKEN_ISSUE: (
        _AUTH_TYPE,
        {"system": IHE_EVENT, "code": "ITI-71", "display": "Get Access Token"},
    ),
    Interaction.TOKEN_REVOKE: (
        _AUTH_TYPE,
        {"system": SUBTYPE_SYSTEM, "code": "token-revoke", "display": "Token revocation"},
    ),
    Interaction.TOKEN_INTROSPECT: (
        _AUTH_TYPE,
        {"system": SUBTYPE_SYSTEM, "code": "token-introspect", "display": "Token introspection"},
    ),
    Interaction.HL7_INGEST: (
        _IMPORT_TYPE,
        {"system": SUBTYPE_SYSTEM, "code": "hl7-ingest", "display": "HL7 v2 message ingest"},
    ),
}

_SOURCE_ROLE = {"system": DCM, "code": "110153", "display": "Source Role ID"}
_DESTINATION_ROLE = {"system": DCM, "code": "110152", "display": "Destination Role ID"}
_APPLICATION = {"system": DCM, "code": "110150", "display": "Application"}
_CUSTODIAN = {"system": PROVENANCE_PARTICIPANT, "code": "custodian", "display": "Custodian"}
_READ_LIKE = frozenset(
    {
        Interaction.READ,
        Interaction.VREAD,
        Interaction.HISTORY_INSTANCE,
        Interaction.HISTORY_TYPE,
        Interaction.HISTORY_SYSTEM,
    }
)

_PATIENT_ENTITY_TYPE = {"system": ENTITY_TYPE, "code": "1", "display": "Person"}
_PATIENT_ROLE = {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
_SYSTEM_OBJECT = {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}
_DOMAIN_RESOURCE = {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
_QUERY_ROLE = {"system": OBJECT_ROLE, "code": "24", "display": "Query"}
_JOB_ROLE = {"system": OBJECT_ROLE, "code": "20", "display": "Job"}
_REQUEST_ID_TYPE = {
    "system": BALP_ENTITY_TYPE,
    "code": "XrequestId",
    "display": "transport specific unique identifier where http X-Request-Id is used",
}
_APP_SERVER = {"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """What the server knows about one access; never a name, body or identifier value.

    ``patient_ids`` and the other sequences are stored as tuples so a record stays
    hashable and immutable; any iterable is accepted.  ``query`` is the raw search
    request as received (``"Observation?subject=Patient/1"``, or the form body of a
    ``POST _search``).  ``description`` must be PHI-free: it ends up in ``outcomeDesc``.
    ``denied`` marks refusals answered with something other than 401/403 (a 404 that
    hides a resource outside the patient compartment).
    """

    interaction: Interaction
    recorded: datetime
    status: int
    description: str = ""
    user_id: str | None = None
    client_id: str | None = None
    roles: Sequence[str] = ()
    purpose_of_use: Sequence[str] = ()
    network_address: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: str | None = None
    patient_ids: Sequence[str] = ()
    query: str | None = None
    operation: str | None = None
    request_id: str | None = None
    denied: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "interaction", Interaction(self.interaction))
        if self.recorded.tzinfo is None:
            raise ValueError("AccessRecord.recorded must be timezone-aware")
        if not 100 <= self.status <= 599:
            raise ValueError(f"AccessRecord.status {self.status} is not an HTTP status")
        for name in ("roles", "purpose_of_use", "patient_ids"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"AccessRecord.{name} must be a sequence of strings")
            if value:
                object.__setattr__(self, name, _unique(value))
            elif not isinstance(value, tuple):
                object.__setattr__(self, name, ())
        if self.resource_id is not None and self.resource_type is None:
            raise ValueError("AccessRecord.resource_id needs resource_type")
        if self.version_id is not None and self.resource_id is None:
            raise ValueError("AccessRecord.version_id needs resource_id")

    @property
    def is_denied(self) -> bool:
        return self.denied or self.status in (401, 403)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    """Drops empty strings and repeats, keeping first-seen order (deterministic output)."""
    return tuple(dict.fromkeys(v for v in values if v))


def fhir_instant(moment: datetime) -> str:
    """FHIR ``instant`` in UTC with microseconds: sorts as text in time order."""
    # isoformat ends in "+00:00" in UTC; it is twice as fast as strftime (every request).
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def outcome_code(status: int, *, denied: bool = False) -> str:
    """R4 ``audit-event-outcome`` for an HTTP status (see the module docstring)."""
    if denied or 400 <= status < 500:
        return "4"
    if status >= 500:
        return "8"
    return "0"


_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def _outcome_desc(record: AccessRecord) -> str:
    phrase = _PHRASES.get(record.status, "Unknown status")
    text = f"HTTP {record.status} {phrase}"
    if record.description:
        text = f"{text}: {record.description}"
    return f"denied: {text}" if record.is_denied else text


def _network(address: str) -> dict[str, str]:
    """R4 ``network-type``: 2 for an IP address, 1 for a machine name."""
    return {"address": address, "type": _network_type(address)}


@functools.lru_cache(maxsize=4096)  # clients come back from the same few addresses
def _network_type(address: str) -> str:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


def _agent_types(interaction: Interaction) -> tuple[dict[str, str], dict[str, str]]:
    """(client agent type, server agent type) in BALP's data-flow convention."""
    if interaction is Interaction.DELETE:
        return _APPLICATION, _CUSTODIAN
    if interaction in _READ_LIKE:
        return _DESTINATION_ROLE, _SOURCE_ROLE
    return _SOURCE_ROLE, _DESTINATION_ROLE


def _agents(record: AccessRecord, *, server_id: str, action: str) -> list[dict[str, Any]]:
    client_type, server_type = _agent_types(record.interaction)
    user_is_requestor = record.user_id is not None
    client: dict[str, Any] = {"type": {"coding": [dict(client_type)]}}
    if record.client_id is not None:
        client["who"] = {"identifier": {"system": CLIENT_ID_SYSTEM, "value": record.client_id}}
    client["requestor"] = not user_is_requestor
    if record.network_address:
        client["network"] = _network(record.network_address)
    server = {
        "type": {"coding": [dict(server_type)]},
        "who": {"identifier": {"value": server_id}},
        "requestor": False,
    }
    if not user_is_requestor:
        _add_authority(client, record)
        return [client, server]
    user_type = {
        "system": PARTICIPATION,
        "code": "AUT" if action in ("C", "U", "D") else "IRCP",
        "display": "author" if action in ("C", "U", "D") else "information recipient",
    }
    user: dict[str, Any] = {
        "type": {"coding": [user_type]},
        "who": {"identifier": {"system": USER_ID_SYSTEM, "value": record.user_id}},
        "requestor": True,
    }
    _add_authority(user, record)
    return [user, client, server]


def _add_authority(agent: dict[str, Any], record: AccessRecord) -> None:
    """Role and purposeOfUse go on the requestor, where the token put them."""
    if record.roles:
        agent["role"] = [{"coding": [{"system": ROLE_SYSTEM, "code": r}]} for r in record.roles]
    if record.purpose_of_use:
        agent["purposeOfUse"] = [
            {"coding": [{"system": ACT_REASON, "code": p}]} for p in record.purpose_of_use
        ]


def _entities(record: AccessRecord) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{pid}"},
            "type": dict(_PATIENT_ENTITY_TYPE),
            "role": dict(_PATIENT_ROLE),
        }
        for pid in record.patient_ids
    ]
    if record.resource_id is not None:
        reference = f"{record.resource_type}/{record.resource_id}"
        if record.version_id is not None:
            reference = f"{reference}/_history/{record.version_id}"
        entities.append(
            {
                "what": {"reference": reference},
                "type": dict(_SYSTEM_OBJECT),
                "role": dict(_DOMAIN_RESOURCE),
            }
        )
    if record.operation:
        entities.append(
            {"type": dict(_SYSTEM_OBJECT), "role": dict(_JOB_ROLE), "name": record.operation}
        )
    if record.query:
        encoded = base64.b64encode(record.query.encode("utf-8")).decode("ascii")
        entities.append({"type": dict(_SYSTEM_OBJECT), "role": dict(_QUERY_ROLE), "query": encoded})
    if record.request_id:
        entities.append(
            {"what": {"identifier": {"value": record.request_id}}, "type": dict(_REQUEST_ID_TYPE)}
        )
    return entities


def build_audit_event(record: AccessRecord, *, server_id: str, event_id: str) -> dict[str, Any]:
    """The R4 AuditEvent (as JSON-ready dict) for one access; pure, no I/O."""
    action = _ACTION[record.interaction]
    special = _SPECIAL_TYPE_SUBTYPE.get(record.interaction)
    if special is None:
        event_type = dict(_REST_TYPE)
        code = record.interaction.value
        subtype = {"system": RESTFUL, "code": code, "display": code}
    else:
        event_type, subtype = dict(special[0]), dict(special[1])
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": event_type,
        "subtype": [subtype],
        "action": action,
        "recorded": fhir_instant(record.recorded),
        "outcome": outcome_code(record.status, denied=record.is_denied),
        "outcomeDesc": _outcome_desc(record),
        "agent": _agents(record, server_id=server_id, action=action),
        "source": {
            "site": server_id,
            "observer": {"identifier": {"value": server_id}},
            "type": [dict(_APP_SERVER)],
        },
    }
    entities = _entities(record)
    if entities:
        event["entity"] = entities
    return event
