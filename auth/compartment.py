"""The R4 patient compartment for the six resource types MediCore serves.

Source: the official R4 CompartmentDefinition `patient`
(http://hl7.org/fhir/R4/compartmentdefinition-patient.html; file
`CompartmentDefinition-patient.json` of the `hl7.fhir.r4.core` 4.0.1 package, as stored in
google/fhir `spec/hl7.fhir.core/4.0.1/package/`). Its entries for our types:

    Patient            param link         (Patient.link.other), plus the Patient itself
    Encounter          param patient      (Encounter.subject.where(resolve() is Patient))
    MedicationRequest  param subject      (MedicationRequest.subject)
    Observation        param subject, performer  (Observation.subject, Observation.performer)
    Provenance         param patient      (Provenance.target.where(resolve() is Patient))
    AuditEvent         param patient      (AuditEvent.agent.who | AuditEvent.entity.what,
                                           each .where(resolve() is Patient))

The FHIRPath expressions are those of the R4 SearchParameters of the same names
(`search-parameters.json`). Here they are walked directly over the JSON, and
`resolve() is Patient` is read from the reference text (`Patient/<id>`, possibly absolute
or versioned), because the leaf package has no store to resolve against.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: resource type -> JSON paths (dotted, lists flattened) whose References are checked.
_REFERENCE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Patient": ("link.other",),
    "Encounter": ("subject",),
    "MedicationRequest": ("subject",),
    "Observation": ("subject", "performer"),
    "Provenance": ("target",),
    "AuditEvent": ("agent.who", "entity.what"),
}


#: resource type -> the search parameter naming the patient a resource is *about* (its
#: subject), the rule patient-context tokens are held to. Narrower than the compartment:
#: an Observation another patient performed is not about that patient, and a linked
#: Patient record is not the token's patient.
PATIENT_PARAMS: Mapping[str, str] = {
    "Patient": "_id",
    "Encounter": "subject",
    "MedicationRequest": "subject",
    "Observation": "subject",
    "Provenance": "patient",
    "AuditEvent": "patient",
}


def patient_criteria(resource_type: str, patient_id: str) -> list[tuple[str, str]] | None:
    """Search parameters that hold when a resource of this type is about ``patient_id``
    (None: the type is never about a patient, so patient-context tokens cannot reach it)."""
    param = PATIENT_PARAMS.get(resource_type)
    if param is None:
        return None
    return [(param, patient_id if param == "_id" else f"Patient/{patient_id}")]


def _walk(node: Any, parts: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parts)
        return
    if not parts:
        yield node
        return
    if isinstance(node, Mapping) and parts[0] in node:
        yield from _walk(node[parts[0]], parts[1:])


def patient_id_of_reference(reference: Any) -> str | None:
    """The patient id a Reference points at, or None if it is not a Patient reference."""
    if not isinstance(reference, Mapping):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def _patient_ids(resource: Mapping[str, Any]) -> Iterator[str]:
    """Patient ids `resource` is in the compartment of, repeats included, first seen first."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in _REFERENCE_PATHS:
        return
    if resource_type == "Patient" and isinstance(resource.get("id"), str):
        yield resource["id"]
    for path in _REFERENCE_PATHS[resource_type]:
        for ref in _walk(resource, path.split(".")):
            patient_id = patient_id_of_reference(ref)
            if patient_id is not None:
                yield patient_id


def compartment_patients(resource: Mapping[str, Any]) -> list[str]:
    """The ids of every patient whose compartment `resource` is in, first seen first."""
    return list(dict.fromkeys(_patient_ids(resource)))


__all__ = [
    "PATIENT_PARAMS",
    "compartment_patients",
    "patient_criteria",
    "patient_id_of_reference",
]
