"""PID (and MRG) -> Patient, following the V2-to-FHIR IG segment map for PID."""

from __future__ import annotations

from typing import Any

from converters._context import Context, missing
from converters._datatypes import (
    codeable,
    contact_point,
    fhir_date,
    human_name,
    identifier,
    postal_address,
)
from converters._message import Rep, Segment

__all__ = ["merge_patients", "patient_key", "write_patient"]

_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
_MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


def _key_rep(reps: list[Rep]) -> Rep:
    """The identifier that keys the Patient: the first MR in the list, else the first."""
    return next((r for r in reps if r.c(5).upper() == "MR"), reps[0])


def patient_key(ctx: Context, seg: Segment, n: int = 3) -> dict[str, Any]:
    reps = [r for r in seg.reps(n) if r.c(1)]
    if not reps:
        raise missing(seg, n, what=f"{seg.name}-{n}")
    key = identifier(_key_rep(reps), loc=seg.loc(n), default_system=ctx.default_system)
    assert key is not None  # reps were filtered on a value
    return {"system": key["system"], "value": key["value"]}


def _identifiers(ctx: Context, pid: Segment) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n, type_code in ((3, None), (2, None), (4, None), (19, "SS"), (20, "DL")):
        for rep in pid.reps(n):
            ident = identifier(
                rep, loc=pid.loc(n), default_system=ctx.default_system, type_code=type_code
            )
            if n == 19 and ident:
                ident["system"] = "http://hl7.org/fhir/sid/us-ssn"
            if ident and not any(
                i["value"] == ident["value"] and i.get("system") == ident.get("system")
                for i in found
            ):
                found.append(ident)
    return found


def _patient(ctx: Context, pid: Segment) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": _identifiers(ctx, pid),
        "active": True,
    }
    names = [human_name(rep, loc=pid.loc(5)) for rep in pid.reps(5)]
    if any(names):
        patient["name"] = [n for n in names if n]
    if pid.get(8):
        patient["gender"] = _GENDER.get(pid.get(8).upper(), "unknown")
    birth = fhir_date(pid.get(7), loc=pid.loc(7))
    if birth:
        patient["birthDate"] = birth
    addresses = [postal_address(rep) for rep in pid.reps(11)]
    if any(addresses):
        patient["address"] = [a for a in addresses if a]
    telecom = [contact_point(r, use="home") for r in pid.reps(13)]
    telecom += [contact_point(r, use="work") for r in pid.reps(14)]
    if any(telecom):
        patient["telecom"] = [t for t in telecom if t]
    marital = codeable(pid.rep(16), default_system="HL70002")
    if marital:
        for coding in marital.get("coding", []):
            if coding.get("system", "").endswith("v2-0002"):
                coding["system"] = _MARITAL
        patient["maritalStatus"] = marital
    language = codeable(pid.rep(15))
    if language:
        patient["communication"] = [{"language": language, "preferred": True}]
    maiden = pid.get(6, 1)
    if maiden:
        patient["extension"] = [{"url": _MAIDEN, "valueString": maiden}]
    if pid.get(24) in ("Y", "N"):
        order = pid.get(25)
        patient["multipleBirthInteger" if order.isdigit() else "multipleBirthBoolean"] = (
            int(order) if order.isdigit() else pid.get(24) == "Y"
        )
    death = ctx.dt(pid, 29)
    if death:
        patient["deceasedDateTime"] = death
    elif pid.get(30) in ("Y", "N"):
        patient["deceasedBoolean"] = pid.get(30) == "Y"
    return patient


def write_patient(ctx: Context, pid: Segment | None, *, replace: bool) -> str:
    """Add the Patient to the Bundle; ``replace`` = conditional update, else create-if-absent.

    ADT messages own demographics (PUT); results and orders only make sure the Patient
    exists (POST with ifNoneExist) so that a sparse lab PID never erases ADT data.
    """
    if pid is None:
        raise missing(None, what="PID")
    key = patient_key(ctx, pid)
    resource = _patient(ctx, pid)
    if replace:
        return ctx.builder.put(resource, key)
    return ctx.builder.create(resource, key)


def merge_patients(ctx: Context, pid: Segment, mrg: Segment) -> list[str]:
    """A40: the survivor (PID) keeps its identifiers; the MRG-1 Patient is retired.

    The retired Patient is replaced by a version holding only its identifiers,
    ``active=false`` and a ``replaced-by`` link; its earlier versions stay in history.
    Resources that pointed at it are not re-pointed (see converters/README.md).
    """
    survivor_key = patient_key(ctx, pid)
    old_key = patient_key(ctx, mrg, 1)
    survivor = _patient(ctx, pid)
    survivor_urn = ctx.builder.put(survivor, survivor_key)
    old_ids = [
        i
        for rep in mrg.reps(1)
        if (i := identifier(rep, loc=mrg.loc(1), default_system=ctx.default_system))
    ]
    retired = {
        "resourceType": "Patient",
        "identifier": [{**i, "use": "old"} for i in old_ids],
        "active": False,
        "link": [{"other": {"reference": survivor_urn}, "type": "replaced-by"}],
    }
    old_urn = ctx.builder.put(retired, old_key)
    survivor.setdefault("link", []).append({"other": {"reference": old_urn}, "type": "replaces"})
    return [survivor_urn, old_urn]
