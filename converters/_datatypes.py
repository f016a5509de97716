"""v2 data types (DTM, CX, XPN, XAD, XTN, CWE, XCN) to FHIR data types, per the V2-to-FHIR IG."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

from converters._message import Rep, Segment
from converters._model import ConversionError

__all__ = [
    "ID_PREFIX",
    "authority_system",
    "code_system",
    "codeable",
    "contact_point",
    "dtm",
    "fhir_date",
    "human_name",
    "identifier",
    "postal_address",
    "practitioner_ref",
]

ID_PREFIX = "urn:medicore:hl7:id:"
CS_PREFIX = "urn:medicore:hl7:cs:"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$")

#: HL7 table 0396 coding-system names -> FHIR system URIs (the ones senders actually use).
CODE_SYSTEMS: dict[str, str] = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNOMED-CT": "http://snomed.info/sct",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CM": "http://hl7.org/fhir/sid/icd-9-cm",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "UCUM": "http://unitsofmeasure.org",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "ATC": "http://www.whocc.no/atc",
    "KCD": "urn:oid:2.16.410.100001.1.1",  # KCD-7 (Korean ICD-10 adaptation)
    "EDI": "urn:oid:1.2.410.100110.10.41",  # Korean HIRA EDI codes (KR Core)
}


def authority_system(namespace: str, universal_id: str = "", id_type: str = "") -> str | None:
    """Identifier.system for an HD assigning authority.

    An OID (in HD.2, or as HD.1 text) becomes ``urn:oid:...``, a UUID ``urn:uuid:...``, a
    URI stays as is, anything else ``urn:medicore:hl7:id:<percent-encoded namespace>``.
    """
    for candidate in (universal_id, namespace):
        if _OID.match(candidate):
            return f"urn:oid:{candidate}"
        if _UUID.match(candidate):
            return f"urn:uuid:{candidate.lower()}"
        if id_type.upper() == "URI" and candidate == universal_id and ":" in candidate:
            return candidate
    text = namespace or universal_id
    return f"{ID_PREFIX}{quote(text, safe='')}" if text else None


def code_system(name: str) -> str | None:
    """FHIR system URI for a v2 coding-system name (HL7nnnn tables included)."""
    if not name:
        return None
    upper = name.upper()
    if upper in CODE_SYSTEMS:
        return CODE_SYSTEMS[upper]
    match = re.match(r"^HL7(\d{4})$", upper)
    if match:
        return f"http://terminology.hl7.org/CodeSystem/v2-{match.group(1)}"
    if _OID.match(name):
        return f"urn:oid:{name}"
    return f"{CS_PREFIX}{quote(name, safe='')}"


#: How times without an offset are read: a fixed offset ("+09:00", "Z"), a zone (its offset
#: at that wall-clock time, so daylight saving is right), or None (kept as a bare date).
DefaultZone = str | tzinfo | None


def offset_text(delta: timedelta | None) -> str:
    """A UTC offset as FHIR writes it: ``Z`` or ``+09:00``."""
    minutes = int((delta or timedelta(0)).total_seconds() // 60)
    if minutes == 0:
        return "Z"
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_offset(zone: DefaultZone, moment: datetime) -> str | None:
    """The offset ``zone`` gives the naive wall-clock ``moment``."""
    if zone is None or isinstance(zone, str):
        return zone
    return offset_text(moment.replace(tzinfo=zone).utcoffset())


def dtm(value: str, *, loc: str, default_tz: DefaultZone) -> str | None:
    """HL7 DTM/TS -> FHIR dateTime, keeping the sender's precision and time zone."""
    if not value:
        return None
    match = _DTM.match(value.strip())
    if not match:
        raise ConversionError(
            "not a valid HL7 date/time", ack_code="AE", error_code="102", location=loc
        )
    year, month, day, hour, minute, second, frac, tz = match.groups()
    try:
        wall = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
        )
        if tz and (int(tz[1:3]) > 14 or int(tz[3:5]) > 59):
            raise ValueError(tz)
    except ValueError as exc:
        raise ConversionError(
            "date/time out of range", ack_code="AE", error_code="102", location=loc
        ) from exc
    date = "-".join(p for p in (year, month, day) if p)
    if not hour:
        return date
    zone = f"{tz[:3]}:{tz[3:]}" if tz else zone_offset(default_tz, wall)
    if zone is None:
        return date
    if zone in ("+00:00", "-00:00"):
        zone = "Z" if zone == "+00:00" else zone
    return f"{date}T{hour}:{minute or '00'}:{second or '00'}{frac or ''}{zone}"


def fhir_date(value: str, *, loc: str) -> str | None:
    """HL7 DT/DTM -> FHIR date (the time part, if any, is dropped)."""
    result = dtm(value, loc=loc, default_tz=None)
    return result.split("T")[0] if result else None


def _period(start: str, end: str, loc: str) -> dict[str, str] | None:
    period = {}
    if start:
        period["start"] = dtm(start, loc=loc, default_tz=None) or ""
    if end:
        period["end"] = dtm(end, loc=loc, default_tz=None) or ""
    return {k: v for k, v in period.items() if v} or None


def identifier(
    rep: Rep,
    *,
    loc: str,
    default_system: str | None,
    type_code: str | None = None,
    use: str | None = None,
) -> dict[str, Any] | None:
    """CX (or EI when ``rep`` is an EI: value, namespace, universal id, type) -> Identifier."""
    value = rep.c(1)
    if not value:
        return None
    ident: dict[str, Any] = {"value": value}
    if use:
        ident["use"] = use
    system = authority_system(rep.c(4, 1), rep.c(4, 2), rep.c(4, 3)) or authority_system(
        rep.c(6, 1), rep.c(6, 2), rep.c(6, 3)
    )
    ident["system"] = system or default_system
    code = type_code or rep.c(5)
    if code:
        ident["type"] = {"coding": [{"system": V2_0203, "code": code}]}
    period = _period(rep.c(7), rep.c(8), loc)
    if period:
        ident["period"] = period
    return {k: v for k, v in ident.items() if v}


def entity_identifier(
    rep: Rep, *, default_system: str | None, type_code: str | None = None
) -> dict[str, Any] | None:
    """EI (entity identifier: value^namespace^universal id^type) -> Identifier."""
    value = rep.c(1)
    if not value:
        return None
    ident: dict[str, Any] = {"value": value}
    system = authority_system(rep.c(2), rep.c(3), rep.c(4)) or default_system
    if system:
        ident["system"] = system
    if type_code:
        ident["type"] = {"coding": [{"system": V2_0203, "code": type_code}]}
    return ident


_NAME_USE = {
    "L": "official",
    "D": "usual",
    "A": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "T": "temp",
    "B": "old",
    "BAD": "old",
    "C": "old",
    "R": "official",
}


def human_name(rep: Rep, *, loc: str) -> dict[str, Any] | None:
    """XPN -> HumanName (family, given + middle, prefix, suffix + degree, use, period)."""
    name: dict[str, Any] = {}
    family = rep.c(1, 1)
    if family:
        name["family"] = family
    given = [g for g in (rep.c(2), *rep.c(3).split(" ")) if g]
    if given:
        name["given"] = given
    if rep.c(5):
        name["prefix"] = [rep.c(5)]
    suffix = [s for s in (rep.c(4), rep.c(6)) if s]
    if suffix:
        name["suffix"] = suffix
    if not name:
        return None
    use = _NAME_USE.get(rep.c(7).upper())
    if use:
        name["use"] = use
    period = _period(rep.c(12) or rep.c(10, 1), rep.c(13) or rep.c(10, 2), loc)
    if period:
        name["period"] = period
    return name


_ADDRESS_USE = {"H": "home", "P": "home", "B": "work", "O": "work", "C": "temp", "BA": "old"}
_ADDRESS_TYPE = {"M": "postal", "SH": "physical", "BI": "postal"}


def postal_address(rep: Rep) -> dict[str, Any] | None:
    """XAD -> Address."""
    address: dict[str, Any] = {}
    lines = [line for line in (" ".join(rep.subs(1)), rep.c(2)) if line]
    if lines:
        address["line"] = lines
    for comp, key in ((3, "city"), (4, "state"), (5, "postalCode"), (6, "country")):
        if rep.c(comp):
            address[key] = rep.c(comp)
    if rep.c(9):
        address["district"] = rep.c(9)
    if not address:
        return None
    kind = rep.c(7).upper()
    if kind in _ADDRESS_USE:
        address["use"] = _ADDRESS_USE[kind]
    if kind in _ADDRESS_TYPE:
        address["type"] = _ADDRESS_TYPE[kind]
    return address


_TEL_USE = {"PRN": "home", "ORN": "home", "WPN": "work", "VHN": "temp", "PRS": "mobile"}
_TEL_SYSTEM = {"PH": "phone", "FX": "fax", "CP": "phone", "BP": "pager", "INTERNET": "email"}


def contact_point(rep: Rep, *, use: str | None = None) -> dict[str, Any] | None:
    """XTN -> ContactPoint (email from XTN.4, else the unformatted or composed number)."""
    equipment = rep.c(3).upper()
    if equipment in ("INTERNET", "X.400") or rep.c(2).upper() == "NET":
        value = rep.c(4) or rep.c(1)
        point: dict[str, Any] = {"system": "email", "value": value} if value else {}
    else:
        number = rep.c(12)
        if not number and rep.c(7):
            country = f"+{rep.c(5)} " if rep.c(5) else ""
            area = f"({rep.c(6)}) " if rep.c(6) else ""
            ext = f" ext. {rep.c(8)}" if rep.c(8) else ""
            number = f"{country}{area}{rep.c(7)}{ext}"
        number = number or rep.c(1)
        point = {"system": _TEL_SYSTEM.get(equipment, "phone"), "value": number} if number else {}
    if not point:
        return None
    kind = "mobile" if equipment == "CP" else _TEL_USE.get(rep.c(2).upper(), use)
    if kind:
        point["use"] = kind
    return point


def coding(code: str, display: str, system: str) -> dict[str, str]:
    result = {"system": code_system(system) or "", "code": code, "display": display}
    return {k: v for k, v in result.items() if v}


def codeable(rep: Rep | None, *, default_system: str = "") -> dict[str, Any] | None:
    """CWE/CE/CNE -> CodeableConcept (primary and alternate codings, original text)."""
    if rep is None:
        return None
    codings = []
    for first in (1, 4):
        code, display = rep.c(first), rep.c(first + 1)
        system = rep.c(first + 2) or (default_system if first == 1 else "")
        if code:
            codings.append(coding(code, display, system))
    text = rep.c(9) or (rep.c(2) if not rep.c(1) else "")
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    if text:
        concept["text"] = text
    return concept or None


def practitioner_ref(rep: Rep | None, *, default_system: str | None) -> dict[str, Any] | None:
    """XCN -> a logical Reference (identifier + display), since Practitioner is not stored."""
    if rep is None:
        return None
    ref: dict[str, Any] = {"type": "Practitioner"}
    if rep.c(1):
        system = authority_system(rep.c(9, 1), rep.c(9, 2), rep.c(9, 3)) or default_system
        ref["identifier"] = {"value": rep.c(1), **({"system": system} if system else {})}
    name = " ".join(p for p in (rep.c(6), rep.c(3), rep.c(4), rep.c(2, 1), rep.c(5)) if p)
    if name:
        ref["display"] = name
    return ref if len(ref) > 1 else None


def segment_codes(seg: Segment, n: int, *, default_system: str = "") -> list[dict[str, Any]]:
    """Every repetition of a CWE field as CodeableConcepts."""
    concepts = [codeable(rep, default_system=default_system) for rep in seg.reps(n)]
    return [c for c in concepts if c]
