"""PV1/PV2 -> Encounter, following the V2-to-FHIR IG segment map for PV1."""

from __future__ import annotations

from typing import Any

from converters._context import Context
from converters._datatypes import codeable, identifier, practitioner_ref
from converters._message import Rep, Segment

__all__ = ["EVENT_STATUS", "write_encounter"]

_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

#: PV1-2 patient class (table 0004) -> Encounter.class (IG ConceptMap PatientClass).
_CLASS = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("IMP", "inpatient encounter"),
    "C": ("AMB", "ambulatory"),
}

#: ADT trigger -> Encounter.status when PV1 itself says nothing more specific.
EVENT_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "arrived",
    "A05": "planned",
    "A08": "in-progress",
    "A11": "cancelled",
    "A13": "in-progress",
}


def _location(rep: Rep, status: str) -> dict[str, Any] | None:
    """PL -> Encounter.location with a display-only Location reference."""
    parts = [rep.c(1), rep.c(2), rep.c(3), rep.c(4, 1)]
    labels = ["point of care", "room", "bed", "facility"]
    text = ", ".join(f"{label} {p}" for label, p in zip(labels, parts, strict=True) if p)
    if not text:
        return None
    return {"location": {"type": "Location", "display": text}, "status": status}


def _status(ctx: Context, pv1: Segment) -> str:
    event = ctx.event
    if event in ("A03", "A11", "A05"):
        return EVENT_STATUS[event]
    if pv1.get(45) and event != "A13":
        return "finished"
    return EVENT_STATUS.get(event, "in-progress")


def _encounter(ctx: Context, pv1: Segment, pv2: Segment | None, patient: str) -> dict[str, Any]:
    patient_class = pv1.get(2).upper()
    code, display = _CLASS.get(patient_class, ("", ""))
    klass: dict[str, str] = (
        {"system": _ACT, "code": code, "display": display}
        if code
        else {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0004",
            "code": patient_class or "U",
        }
    )
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": _status(ctx, pv1),
        "class": klass,
        "subject": {"reference": patient},
    }
    ids = [
        identifier(rep, loc=pv1.loc(19), default_system=ctx.default_system, type_code="VN")
        for rep in pv1.reps(19)
    ]
    enc["identifier"] = [{**i, "use": "official"} for i in ids if i]
    admission = codeable(pv1.rep(4), default_system="HL70007")
    if admission:
        enc["type"] = [admission]
    service = codeable(pv1.rep(10), default_system="HL70069")
    if service:
        enc["serviceType"] = service
    participants = []
    for n, role in ((7, "ATND"), (8, "REF"), (9, "CON"), (17, "ADM")):
        for rep in pv1.reps(n):
            ref = practitioner_ref(rep, default_system=ctx.default_system)
            if ref:
                coding = {"system": _PARTICIPATION, "code": role}
                participants.append({"type": [{"coding": [coding]}], "individual": ref})
    if participants:
        enc["participant"] = participants
    period = {"start": ctx.dt(pv1, 44), "end": ctx.dt(pv1, 45)}
    if ctx.event == "A13":
        period["end"] = None  # cancel discharge: the visit is open again
    period = {k: v for k, v in period.items() if v}
    if period:
        enc["period"] = period
    locations = []
    assigned = pv1.rep(3)
    if assigned:
        locations.append(_location(assigned, "planned" if ctx.event == "A05" else "active"))
    prior = pv1.rep(6)
    if prior:
        locations.append(_location(prior, "completed"))
    if any(locations):
        enc["location"] = [loc for loc in locations if loc]
    hosp: dict[str, Any] = {}
    pre_admit = pv1.rep(5)
    if pre_admit:
        hosp["preAdmissionIdentifier"] = identifier(
            pre_admit, loc=pv1.loc(5), default_system=ctx.default_system
        )
    for n, key, table in (
        (13, "reAdmission", "HL70092"),
        (14, "admitSource", "HL70023"),
        (36, "dischargeDisposition", "HL70112"),
    ):
        concept = codeable(pv1.rep(n), default_system=table)
        if concept:
            hosp[key] = concept
    diet = codeable(pv1.rep(38), default_system="HL70114")
    if diet:
        hosp["dietPreference"] = [diet]
    hosp = {k: v for k, v in hosp.items() if v}
    if hosp:
        enc["hospitalization"] = hosp
    if pv2 is not None:
        reason = codeable(pv2.rep(3))
        if reason:
            enc["reasonCode"] = [reason]
    return enc


def write_encounter(
    ctx: Context, pv1: Segment | None, *, patient: str, replace: bool
) -> str | None:
    """Add the Encounter keyed on PV1-19; without a visit number there is no Encounter.

    A visit without a number cannot be matched on replay or update, so none is written.
    """
    if pv1 is None:
        return None
    visit = next((r for r in pv1.reps(19) if r.c(1)), None)
    if visit is None:
        return None
    key = identifier(visit, loc=pv1.loc(19), default_system=ctx.default_system)
    assert key is not None
    key = {"system": key["system"], "value": key["value"]}
    pv2 = next((s for s in ctx.msg.segments if s.name == "PV2"), None)
    resource = _encounter(ctx, pv1, pv2, patient)
    if replace:
        return ctx.builder.put(resource, key)
    return ctx.builder.create(resource, key)
