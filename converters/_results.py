"""ORU^R01: one Observation per OBX, grouped by OBR, keyed on filler order + OBX-3 (+ OBX-4)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from converters._context import Context, missing
from converters._datatypes import (
    authority_system,
    code_system,
    codeable,
    entity_identifier,
    fhir_date,
    practitioner_ref,
    segment_codes,
)
from converters._encounter import write_encounter
from converters._message import Segment
from converters._model import ConversionError
from converters._patient import write_patient

__all__ = ["convert_oru", "observation_key"]

UCUM = "http://unitsofmeasure.org"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

#: OBX-11 (table 0085) -> Observation.status.
_STATUS = {
    "C": "corrected",
    "A": "amended",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "F": "final",
    "U": "final",
    "I": "registered",
    "O": "registered",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "X": "cancelled",
    "N": "cancelled",
}
_COMPARATORS = {"<", "<=", ">=", ">"}
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|to|_|–)\s*(-?\d+(?:\.\d+)?)\s*$")
_SIDED = re.compile(r"^\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


def _number(text: str, *, loc: str) -> int | float:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ConversionError(
            "numeric result is not a number", error_code="102", location=loc
        ) from exc
    if not value.is_finite():
        raise ConversionError("numeric result is not finite", error_code="102", location=loc)
    return int(value) if value == value.to_integral_value() and "." not in text else float(value)


def _quantity(value: int | float, obx: Segment) -> dict[str, Any]:
    """valueQuantity; the unit is coded in UCUM only when OBX-6 says it is UCUM."""
    quantity: dict[str, Any] = {"value": value}
    unit = obx.rep(6)
    if unit is not None:
        code, text, system = unit.c(1), unit.c(2), unit.c(3)
        quantity["unit"] = text or code
        if code and code_system(system) == UCUM:
            quantity["system"] = UCUM
            quantity["code"] = code
    return quantity


def _structured_numeric(obx: Segment, loc: str) -> dict[str, Any]:
    rep = obx.rep(5)
    assert rep is not None
    comparator, first, separator, second = rep.c(1), rep.c(2), rep.c(3), rep.c(4)
    if not first:
        raise missing(obx, 5, what="OBX-5.2")
    low = _number(first, loc=loc)
    if separator in (":", "/") and second:
        return {
            "valueRatio": {
                "numerator": {"value": low},
                "denominator": {"value": _number(second, loc=loc)},
            }
        }
    if separator in ("-",) and second:
        return {
            "valueRange": {
                "low": _quantity(low, obx),
                "high": _quantity(_number(second, loc=loc), obx),
            }
        }
    quantity = _quantity(low, obx)
    if comparator in _COMPARATORS:
        quantity["comparator"] = comparator
    elif comparator and comparator != "=":
        raise ConversionError("unknown SN comparator", error_code="102", location=loc)
    return {"valueQuantity": quantity}


def _value(ctx: Context, obx: Segment) -> dict[str, Any]:
    value_type = obx.get(2).upper()
    reps = obx.reps(5)
    if not reps:
        return {}
    loc = obx.loc(5)
    if value_type == "NM":
        return {"valueQuantity": _quantity(_number(reps[0].c(1), loc=loc), obx)}
    if value_type == "SN":
        return _structured_numeric(obx, loc)
    if value_type in ("ST", "TX", "FT"):
        return {"valueString": "\n".join(r.c(1) for r in reps)}
    if value_type in ("CE", "CWE", "CNE", "CF"):
        concept = codeable(reps[0])
        return {"valueCodeableConcept": concept} if concept else {}
    if value_type == "DT":
        return {"valueDateTime": fhir_date(reps[0].c(1), loc=loc)}
    if value_type in ("TS", "DTM"):
        return {"valueDateTime": ctx.dt(obx, 5)}
    if value_type == "TM":
        match = re.match(r"^(\d{2})(\d{2})?(\d{2})?", reps[0].c(1))
        if match:
            hh, mm, ss = match.groups()
            return {"valueTime": f"{hh}:{mm or '00'}:{ss or '00'}"}
    return {
        "dataAbsentReason": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "unsupported",
                }
            ],
            "text": f"OBX-2 value type {value_type or '(empty)'} is not converted",
        }
    }


def _reference_range(obx: Segment) -> list[dict[str, Any]]:
    text = obx.get(7)
    if not text:
        return []
    found: dict[str, Any] = {"text": text}
    match = _RANGE.match(text)
    if match:
        found["low"] = _quantity(float(match.group(1)), obx)
        found["high"] = _quantity(float(match.group(2)), obx)
    elif (sided := _SIDED.match(text)) is not None:
        bound = _quantity(float(sided.group(2)), obx)
        found["high" if sided.group(1).startswith("<") else "low"] = bound
    return [found]


def observation_key(ctx: Context, order: Segment, obx: Segment) -> dict[str, Any]:
    """Filler order number (OBR-3, else OBR-2 placer) + OBX-3 code (+ OBX-4 sub-id)."""
    number_field = 3 if order.get(3) else 2
    order_rep = order.rep(number_field)
    if order_rep is None:
        raise missing(order, 3, what="OBR-3")
    code = obx.rep(3)
    if code is None or not code.c(1):
        raise missing(obx, 3, what="OBX-3")
    system = authority_system(order_rep.c(2), order_rep.c(3), order_rep.c(4))
    parts = [order_rep.c(1), code.c(3), code.c(1)] + ([obx.get(4)] if obx.get(4) else [])
    return {
        "system": system or ctx.default_system or "urn:medicore:hl7:id:unknown",
        "value": "/".join(parts),
    }


def _observation(
    ctx: Context, obr: Segment, obx: Segment, patient: str, encounter: str | None
) -> dict[str, Any]:
    status_code = obx.get(11).upper()
    if not status_code:
        raise missing(obx, 11, what="OBX-11")
    if status_code not in _STATUS:
        raise ConversionError(
            "OBX-11 result status is not in table 0085", error_code="103", location=obx.loc(11)
        )
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [observation_key(ctx, obr, obx)],
        "status": _STATUS[status_code],
        "code": codeable(obx.rep(3)),
        "subject": {"reference": patient},
    }
    based_on = [
        ref
        for n, kind in ((2, "PLAC"), (3, "FILL"))
        if (rep := obr.rep(n))
        and (ref := entity_identifier(rep, default_system=ctx.default_system, type_code=kind))
    ]
    if based_on:
        obs["basedOn"] = [{"type": "ServiceRequest", "identifier": i} for i in based_on]
    if encounter:
        obs["encounter"] = {"reference": encounter}
    obs.update(_value(ctx, obx))
    effective = ctx.dt(obx, 14) or ctx.dt(obr, 7)
    if effective:
        obs["effectiveDateTime"] = effective
    ranges = _reference_range(obx)
    if ranges:
        obs["referenceRange"] = ranges
    flags = [rep.c(1) for rep in obx.reps(8) if rep.c(1)]
    if flags:
        obs["interpretation"] = [
            {"coding": [{"system": _INTERPRETATION, "code": flag}]} for flag in flags
        ]
    performers = [
        ref
        for rep in obx.reps(16)
        if (ref := practitioner_ref(rep, default_system=ctx.default_system))
    ]
    if performers:
        obs["performer"] = performers
    method = codeable(obx.rep(17))
    if method:
        obs["method"] = method
    site = codeable(obx.rep(20))
    if site:
        obs["bodySite"] = site
    category = segment_codes(obr, 24, default_system="HL70074")
    if category:
        obs["category"] = category
    return obs


def convert_oru(ctx: Context) -> None:
    """Walk the message in order: PID, PV1, then OBR groups with their OBX (and NTE)."""
    patient: str | None = None
    encounter: str | None = None
    obr: Segment | None = None
    last: dict[str, Any] | None = None
    results = 0
    for seg in ctx.msg:
        if seg.name == "PID":
            patient = write_patient(ctx, seg, replace=False)
            encounter, obr, last = None, None, None
        elif seg.name == "PV1" and patient:
            encounter = write_encounter(ctx, seg, patient=patient, replace=False)
        elif seg.name in ("OBR", "ORC"):
            obr, last = (seg if seg.name == "OBR" else None), None
        elif seg.name == "OBX":
            if patient is None:
                raise missing(None, what="PID")
            if obr is None:
                last = None  # patient- or ORC-level OBX (v2.7+): no order to key it on
                continue
            last = _observation(ctx, obr, seg, patient, encounter)
            ctx.builder.put(last, last["identifier"][0])
            results += 1
        elif seg.name == "NTE" and last is not None:
            comment = "\n".join(rep.c(1) for rep in seg.reps(3))
            if comment:
                last.setdefault("note", []).append({"text": comment})
    if patient is None:
        raise missing(None, what="PID")
    if not results:
        raise ConversionError("no OBX result segment", error_code="100", location="OBX")
