"""Hand-written resources carrying values the official examples lack (for the parity test)."""

from __future__ import annotations

from typing import Any

META = {
    "lastUpdated": "2026-01-02T03:04:05.678+00:00",
    "profile": ["http://example.org/StructureDefinition/p1"],
    "security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    ],
    "tag": [{"system": "http://example.org/tags", "code": "t1"}],
    "source": "http://example.org/source#1",
}
CC = {"coding": [{"system": "http://example.org/cs", "code": "c1", "display": "Code one"}]}

SUPPLEMENTS: dict[str, dict[str, Any]] = {
    "Patient": {
        "resourceType": "Patient",
        "id": "supp-patient",
        "meta": META,
        "deceasedDateTime": "2020-05-06T07:08:09Z",
    },
    "Encounter": {
        "resourceType": "Encounter",
        "id": "supp-encounter",
        "meta": META,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "account": [{"reference": "Account/a1"}],
        "appointment": [{"reference": "Appointment/ap1"}],
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "diagnosis": [{"condition": {"reference": "Condition/c1"}}],
        "episodeOfCare": [{"reference": "EpisodeOfCare/e1"}],
        "location": [{"location": {"reference": "Location/l1"}}],
        "partOf": {"reference": "Encounter/enc0"},
        "participant": [{"type": [CC], "individual": {"reference": "Practitioner/p1"}}],
        "reasonReference": [{"reference": "Condition/c2"}],
        "hospitalization": {"specialArrangement": [CC]},
    },
    "MedicationRequest": {
        "resourceType": "MedicationRequest",
        "id": "supp-medrx",
        "meta": META,
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "medicationCodeableConcept": CC,
        "subject": {"reference": "Patient/example"},
        "dosageInstruction": [{"timing": {"event": ["2021-02-03T10:00:00Z"]}}],
    },
    "Observation": {
        "resourceType": "Observation",
        "id": "supp-obs",
        "meta": META,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1111-1"}]},
        "dataAbsentReason": CC,
        "method": CC,
        "derivedFrom": [{"reference": "Observation/o0"}],
        "focus": [{"reference": "Condition/c1"}],
        "specimen": {"reference": "Specimen/s1"},
        "valueDateTime": "2019-08-07",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "2222-2"}]},
                "valueCodeableConcept": CC,
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "3333-3"}]},
                "dataAbsentReason": CC,
            },
        ],
    },
    "Observation-string": {
        "resourceType": "Observation",
        "id": "supp-obs-string",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4444-4"}]},
        "valueString": "Moderately elevated",
    },
    "Provenance": {
        "resourceType": "Provenance",
        "id": "supp-prov",
        "meta": META,
        "target": [{"reference": "Patient/example"}],
        "occurredDateTime": "2022-03-04T05:06:07Z",
        "recorded": "2022-03-04T05:06:07Z",
        "agent": [{"who": {"reference": "Practitioner/p1"}}],
    },
    "AuditEvent": {
        "resourceType": "AuditEvent",
        "id": "supp-audit",
        "meta": META,
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
        "recorded": "2022-03-04T05:06:07Z",
        "agent": [{"role": [CC], "requestor": True, "who": {"reference": "Patient/example"}}],
        "source": {"observer": {"reference": "Device/d1"}},
    },
}
