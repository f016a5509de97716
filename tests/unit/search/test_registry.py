"""Registry: shipped R4 definitions, per-type expressions, extra definition files."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_server.search import registry as registry_module
from fhir_server.search.extract import extract_index
from fhir_server.search.registry import SearchRegistry
from tests.nickname_parameter import nickname_folder

SHIPPED = Path(registry_module.__file__).with_name("data") / "search-parameters.json"


# Per-base counts stated for the official R4 bundle (shared/fhir-r4/README.md):
# Patient 23, Encounter 23, MedicationRequest 16, Observation 38, Provenance 10,
# AuditEvent 18, plus 8 on Resource and 1 on DomainResource for every type.
OFFICIAL_COUNTS = {
    "Patient": 23,
    "Encounter": 23,
    "MedicationRequest": 16,
    "Observation": 38,
    "Provenance": 10,
    "AuditEvent": 18,
}


def test_shipped_counts_match_the_official_bundle() -> None:
    registry = SearchRegistry.default()
    for resource_type, own in OFFICIAL_COUNTS.items():
        # AuditEvent keeps what auditors search by: 12 of its 27 are not indexed.
        dropped = 12 if resource_type == "AuditEvent" else 0
        assert len(registry.params_for(resource_type)) == own + 8 + 1 - dropped, resource_type
    audit = registry.supported("AuditEvent")
    required = {"patient", "entity", "agent", "agent-role", "date", "action", "outcome"}
    assert required | {"subtype", "address", "type", "_id", "_lastUpdated"} <= set(audit)
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert len(shipped["entry"]) == 131
    assert all(e["resource"]["version"] == "4.0.1" for e in shipped["entry"])


def test_multi_base_expression_is_narrowed_to_the_type() -> None:
    code = SearchRegistry.default().params_for("Observation")["code"]
    assert code.expression == "Observation.code"
    assert code.url == "http://hl7.org/fhir/SearchParameter/clinical-code"
    patient = SearchRegistry.default().params_for("Observation")["patient"]
    assert patient.targets == ("Patient",)


def test_supported_omits_text_and_content() -> None:
    supported = SearchRegistry.default().supported("Patient")
    assert "_text" not in supported and "_content" not in supported
    assert {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} <= set(supported)


def test_extra_definition_directory_is_searchable_without_code(tmp_path: Path) -> None:
    registry = SearchRegistry.load(nickname_folder(tmp_path))
    assert registry.params_for("Patient")["nickname"].type == "string"
    assert "nickname" not in SearchRegistry.default().params_for("Patient")
    patient = {
        "resourceType": "Patient",
        "name": [{"use": "official", "given": ["Robert"]}, {"use": "nickname", "given": ["Bob"]}],
    }
    entries = extract_index(patient, registry)
    assert [(p, n) for p, n, _ in entries.strings if p == "nickname"] == [("nickname", "bob")]
