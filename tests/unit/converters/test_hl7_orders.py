"""Pharmacy orders (RDE^O11, OMP^O09, ORM^O01) and their cancel/discontinue messages."""

from __future__ import annotations

import base64
import json

from .support import codes, converted, entries, one

ORD = "urn:medicore:hl7:id:MEDIORD"


def test_rde_medication_request() -> None:
    bundle = converted("own/rde_o11.hl7").bundle
    (entry,) = entries(bundle, "MedicationRequest")
    assert entry["request"] == {
        "method": "PUT",
        "url": f"MedicationRequest?identifier={ORD}|ORD-900",
    }
    request = entry["resource"]
    assert [(i["value"], i["type"]["coding"][0]["code"]) for i in request["identifier"]] == [
        ("ORD-900", "PLAC"),
        ("RX-900", "FILL"),
    ]
    assert request["status"] == "active"
    assert request["intent"] == "order"
    assert request["medicationCodeableConcept"]["coding"] == [
        {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "197361",
            "display": "Amlodipine 5 MG Oral Tablet",
        }
    ]
    assert request["authoredOn"] == "2024-03-05T10:55:00+09:00"
    assert request["requester"]["display"] == "Dr. Jiwoo Lee"
    assert request["recorder"]["identifier"]["value"] == "N300"
    assert request["priority"] == "routine"
    dosage = request["dosageInstruction"][0]
    assert dosage["doseAndRate"] == [{"doseQuantity": {"value": 5, "unit": "milligram"}}]
    assert codes(dosage["route"]) == {"PO"}
    assert codes(dosage["timing"]["code"]) == {"BID"}
    assert dosage["additionalInstruction"] == [{"text": "Take with water"}]
    assert request["dispenseRequest"] == {
        "quantity": {"value": 30, "unit": "Tablet"},
        "numberOfRepeatsAllowed": 2,
    }
    assert request["note"] == [{"text": "Monitor blood pressure."}]
    patient = entries(bundle, "Patient")[0]
    assert request["subject"] == {"reference": patient["fullUrl"]}
    assert request["encounter"] == {"reference": entries(bundle, "Encounter")[0]["fullUrl"]}


def test_omp_medication_request() -> None:
    request = one(converted("own/omp_o09.hl7").bundle, "MedicationRequest")
    assert codes(request["medicationCodeableConcept"]) == {"313782"}
    assert request["priority"] == "stat"
    assert request["substitution"] == {"allowedBoolean": False}
    assert request["dosageInstruction"][0]["doseAndRate"] == [
        {"doseQuantity": {"value": 650, "unit": "milligram"}}
    ]
    assert request["dispenseRequest"] == {
        "quantity": {"value": 20, "unit": "Tablet"},
        "numberOfRepeatsAllowed": 1,
    }
    assert "encounter" not in request


def test_orm_pre_25_timing_from_orc7_is_not_lost() -> None:
    bundle = converted("own/orm_o01.hl7").bundle
    (entry,) = entries(bundle, "MedicationRequest")
    assert entry["request"]["url"] == f"MedicationRequest?identifier={ORD}|ORD-902"
    assert codes(entry["resource"]["medicationCodeableConcept"]) == {"310965"}
    assert entry["resource"]["status"] == "active"
    assert codes(entry["resource"]["dosageInstruction"][0]["timing"]["code"]) == {"Q6H"}


def _patch(entry: dict[str, object]) -> list[dict[str, str]]:
    resource = entry["resource"]
    assert isinstance(resource, dict)
    assert resource["contentType"] == "application/json-patch+json"
    ops: list[dict[str, str]] = json.loads(base64.b64decode(resource["data"]))
    return ops


def test_cancel_patches_status_of_existing_order() -> None:
    orm = converted("own/orm_o01.hl7").bundle
    cancel = converted("own/orm_o01_cancel.hl7").bundle
    (patch,) = entries(cancel, "Binary")
    original = entries(orm, "MedicationRequest")[0]
    assert patch["request"] == {"method": "PATCH", "url": original["request"]["url"]}
    assert patch["fullUrl"] == original["fullUrl"]
    assert _patch(patch) == [{"op": "replace", "path": "/status", "value": "cancelled"}]
    assert entries(cancel, "MedicationRequest") == []
    prov = one(cancel, "Provenance")
    assert {"reference": patch["fullUrl"]} in prov["target"]


def test_discontinue_sets_stopped() -> None:
    bundle = converted("own/rde_o11_discontinue.hl7").bundle
    (patch,) = entries(bundle, "Binary")
    assert patch["request"]["url"] == f"MedicationRequest?identifier={ORD}|ORD-900"
    assert _patch(patch) == [{"op": "replace", "path": "/status", "value": "stopped"}]
