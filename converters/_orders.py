"""RDE^O11, OMP^O09, ORM^O01 pharmacy orders -> MedicationRequest (ORC + RXO/RXE/RXR/TQ1).

The IG maps ORC and RXO; RXE has no IG map, so its fields follow Microsoft
FHIR-Converter's RDE template (RXE-2 medication, RXE-3/5 dose, RXE-10/11 dispense,
RXE-12 refills, RXE-23/24 rate). One MedicationRequest per ORC group, keyed on the
placer order number (ORC-2), else the filler number (ORC-3).
"""

from __future__ import annotations

from typing import Any

from converters._context import Context, missing
from converters._datatypes import (
    codeable,
    entity_identifier,
    practitioner_ref,
)
from converters._encounter import write_encounter
from converters._message import Segment
from converters._model import ConversionError
from converters._patient import write_patient

__all__ = ["ORDER_TYPES", "convert_order"]

ORDER_TYPES = {"RDE^O11", "OMP^O09", "ORM^O01"}

#: ORC-1 order control codes (table 0119) that end an order, -> MedicationRequest.status.
_ENDING_CONTROL = {
    "CA": "cancelled",
    "OC": "cancelled",
    "CR": "cancelled",
    "DC": "stopped",
    "OD": "stopped",
    "DR": "stopped",
}
_CONTROL = {"HD": "on-hold", "OH": "on-hold", "RL": "active", "OR": "active"}
#: ORC-5 order status (table 0038) -> MedicationRequest.status.
_ORDER_STATUS = {
    "A": "active",
    "CA": "cancelled",
    "CM": "completed",
    "DC": "stopped",
    "ER": "entered-in-error",
    "HD": "on-hold",
    "IP": "active",
    "SC": "active",
    "RP": "stopped",
}
_PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "P": "urgent", "T": "urgent"}


def _status(orc: Segment) -> str:
    control = orc.get(1).upper()
    if control in _ENDING_CONTROL:
        return _ENDING_CONTROL[control]
    if control in _CONTROL:
        return _CONTROL[control]
    return _ORDER_STATUS.get(orc.get(5).upper(), "active")


def _order_key(ctx: Context, orc: Segment) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    idents = []
    for n, kind in ((2, "PLAC"), (3, "FILL")):
        rep = orc.rep(n)
        ident = (
            entity_identifier(rep, default_system=ctx.default_system, type_code=kind)
            if rep
            else None
        )
        if ident:
            idents.append(ident)
    if not idents:
        raise missing(orc, 2, what="ORC-2")
    return {"system": idents[0].get("system", ""), "value": idents[0]["value"]}, idents


def _quantity(value: str, unit_seg: Segment, unit_field: int, *, loc: str) -> dict[str, Any]:
    try:
        number: int | float = float(value) if "." in value else int(value)
    except ValueError as exc:
        raise ConversionError("amount is not a number", error_code="102", location=loc) from exc
    quantity: dict[str, Any] = {"value": number}
    unit = unit_seg.rep(unit_field)
    if unit is not None and (unit.c(2) or unit.c(1)):
        quantity["unit"] = unit.c(2) or unit.c(1)
    return quantity


def _dosage(orc: Segment, group: list[Segment]) -> dict[str, Any]:
    rxe = next((s for s in group if s.name == "RXE"), None)
    rxo = next((s for s in group if s.name == "RXO"), None)
    dosage: dict[str, Any] = {}
    dose_rate: dict[str, Any] = {}
    if rxe is not None and rxe.get(3):
        low = _quantity(rxe.get(3), rxe, 5, loc=rxe.loc(3))
        if rxe.get(4):
            dose_rate["doseRange"] = {
                "low": low,
                "high": _quantity(rxe.get(4), rxe, 5, loc=rxe.loc(4)),
            }
        else:
            dose_rate["doseQuantity"] = low
        if rxe.get(23):
            dose_rate["rateQuantity"] = _quantity(rxe.get(23), rxe, 24, loc=rxe.loc(23))
    elif rxo is not None and rxo.get(2):
        dose_rate["doseQuantity"] = _quantity(rxo.get(2), rxo, 4, loc=rxo.loc(2))
    if dose_rate:
        dosage["doseAndRate"] = [dose_rate]
    instructions = [c for s in (rxe, rxo) if s is not None for c in _codes(s, 7 if s is rxe else 6)]
    if instructions:
        dosage["additionalInstruction"] = instructions
    if rxo is not None and rxo.get(7, 2):
        dosage["patientInstruction"] = rxo.get(7, 2)
    rxr = next((s for s in group if s.name == "RXR"), None)
    if rxr is not None:
        route = codeable(rxr.rep(1), default_system="HL70162")
        if route:
            dosage["route"] = route
        site = codeable(rxr.rep(2), default_system="HL70550")
        if site:
            dosage["site"] = site
    tq1 = next((s for s in group if s.name == "TQ1"), None)
    timing_code = tq1.get(3) if tq1 is not None else ""
    if not timing_code:
        # before v2.5 timing travels in TQ data types: RXE-1 or ORC-7, component 2 (interval)
        timing_code = (rxe.get(1, 2) if rxe is not None else "") or orc.get(7, 2)
    if timing_code:
        dosage["timing"] = {
            "code": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0335",
                        "code": timing_code,
                    }
                ]
            }
        }
    if tq1 is not None and tq1.get(10):
        dosage["asNeededCodeableConcept"] = {"text": tq1.get(10)}
    if tq1 is not None and tq1.get(11):
        dosage["text"] = tq1.get(11)
    return dosage


def _codes(seg: Segment, n: int) -> list[dict[str, Any]]:
    return [c for rep in seg.reps(n) if (c := codeable(rep))]


def _medication_request(
    ctx: Context, orc: Segment, group: list[Segment], patient: str, encounter: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    key, idents = _order_key(ctx, orc)
    rxe = next((s for s in group if s.name == "RXE"), None)
    rxo = next((s for s in group if s.name == "RXO"), None)
    medication = codeable(rxe.rep(2)) if rxe is not None else None
    if medication is None and rxo is not None:
        medication = codeable(rxo.rep(1))
    if medication is None:
        seg = rxe or rxo
        raise (
            missing(seg, 2 if seg is rxe else 1, what="RXE/RXO")
            if seg
            else missing(None, what="RXE")
        )
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "identifier": idents,
        "status": _status(orc),
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": {"reference": patient},
    }
    if encounter:
        request["encounter"] = {"reference": encounter}
    authored = ctx.dt(orc, 9)
    if authored:
        request["authoredOn"] = authored
    for n, element in ((12, "requester"), (10, "recorder")):
        ref = practitioner_ref(orc.rep(n), default_system=ctx.default_system)
        if ref:
            request[element] = ref
    tq1 = next((s for s in group if s.name == "TQ1"), None)
    if tq1 is not None and tq1.get(9).upper() in _PRIORITY:
        request["priority"] = _PRIORITY[tq1.get(9).upper()]
    dosage = _dosage(orc, group)
    if dosage:
        request["dosageInstruction"] = [{"sequence": 1, **dosage}]
    dispense: dict[str, Any] = {}
    source, amount, units, refills = (rxe, 10, 11, 12) if rxe is not None else (rxo, 11, 12, 13)
    if source is not None:
        if source.get(amount):
            dispense["quantity"] = _quantity(
                source.get(amount), source, units, loc=source.loc(amount)
            )
        if source.get(refills).isdigit():
            dispense["numberOfRepeatsAllowed"] = int(source.get(refills))
        substitution = source.get(9)
        if substitution:
            request["substitution"] = {"allowedBoolean": substitution.upper() != "N"}
    if dispense:
        request["dispenseRequest"] = dispense
    notes = [n.get(3) for n in group if n.name == "NTE" and n.get(3)]
    if notes:
        request["note"] = [{"text": text} for text in notes]
    return request, key


def _groups(ctx: Context) -> list[tuple[Segment, list[Segment]]]:
    groups: list[tuple[Segment, list[Segment]]] = []
    for seg in ctx.msg:
        if seg.name == "ORC":
            groups.append((seg, []))
        elif groups and seg.name not in ("PID", "PV1", "PV2"):
            groups[-1][1].append(seg)
    return groups


def convert_order(ctx: Context) -> None:
    """Map each ORC group; cancel/discontinue orders patch the status of the existing order."""
    patient = write_patient(ctx, ctx.msg.first("PID"), replace=False)
    encounter = write_encounter(ctx, ctx.msg.first("PV1"), patient=patient, replace=False)
    groups = _groups(ctx)
    if not groups:
        raise missing(None, what="ORC")
    for orc, group in groups:
        control = orc.get(1).upper()
        if not control:
            raise missing(orc, 1, what="ORC-1")
        if control in _ENDING_CONTROL:
            key, _ = _order_key(ctx, orc)
            status = _ENDING_CONTROL[control]
            ctx.builder.patch(
                "MedicationRequest", key, [{"op": "replace", "path": "/status", "value": status}]
            )
            continue
        if not any(s.name in ("RXE", "RXO") for s in group):
            raise ConversionError(
                "order group has no RXO/RXE (only pharmacy orders are converted)",
                error_code="100",
                location=orc.loc(),
            )
        request, key = _medication_request(ctx, orc, group, patient, encounter)
        ctx.builder.put(request, key)
