"""extract_index keeps producing exactly what it produced before it was optimized.

The fixture ``data/extract_expected.json`` holds, for every official R4 example of the six
supported types (the copy under ``tests/integration/search/examples``, byte-identical to
``/work/shared/fhir-r4/examples``) plus hand-made resources (server-shaped AuditEvents and
edge cases for dates, folding, references, quantities and choice elements), the
``IndexEntries`` the original, unoptimized extraction returned. Hand-made inputs are
stored in the fixture too, so edits to ``audit/events.py`` do not move the target.

Regenerate only when extraction is *meant* to change, and review the diff:
``PYTHONPATH=. .venv/bin/python tests/unit/search/test_extract_equivalence.py --regenerate``
"""

from __future__ import annotations

import copy
import json
import sys
import unicodedata
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fhir_server.search.extract import IndexEntries, extract_index
from fhir_server.search.normalize import exact, fold
from fhir_server.search.paths import compile_exists_not_false, compile_fhirpath
from fhir_server.search.registry import SearchRegistry

EXAMPLES = Path(__file__).parents[2] / "integration" / "search" / "examples"
FIXTURE = Path(__file__).with_name("data") / "extract_expected.json"
TYPES = ("Patient", "Encounter", "MedicationRequest", "Observation", "Provenance", "AuditEvent")


def _encode(entries: IndexEntries) -> dict[str, Any]:
    """JSON-ready form; the sort dict as pairs so its order is compared too."""
    out: dict[str, Any] = {}
    for f in fields(IndexEntries):
        value = getattr(entries, f.name)
        out[f.name] = [list(k) for k in value.items()] if f.name == "sort" else value
    return json.loads(json.dumps(out))


def _dumps(value: Any) -> str:
    # Text comparison also tells 1 from 1.0 (== does not).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _example_files() -> list[Path]:
    return [p for t in TYPES for p in sorted(EXAMPLES.glob(f"{t}-*.json"))]


def _load_fixture() -> list[dict[str, Any]]:
    if not FIXTURE.exists():  # while regenerating; test_fixture_covers_every_example fails
        return []
    cases: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]
    return cases


def _resource(case: dict[str, Any]) -> dict[str, Any]:
    if "resource" in case:
        resource: dict[str, Any] = case["resource"]
        return resource
    loaded: dict[str, Any] = json.loads((EXAMPLES / case["name"]).read_text(encoding="utf-8"))
    return loaded


def test_fixture_covers_every_example() -> None:
    names = {c["name"] for c in _load_fixture()}
    assert {p.name for p in _example_files()} <= names


@pytest.mark.parametrize("case", _load_fixture(), ids=lambda c: c["name"])
def test_extract_index_matches_original(case: dict[str, Any]) -> None:
    resource = _resource(case)
    before = copy.deepcopy(resource)
    registry = SearchRegistry.default()
    for _ in range(2):  # the second run uses the cached plan
        got = _encode(extract_index(resource, registry))
        assert got == case["expected"]
        assert _dumps(got) == _dumps(case["expected"])
    assert resource == before  # extraction never mutates its input


def _fold_reference(text: str) -> str:
    """fold() as it was written before its ASCII shortcut and cache."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", stripped).casefold().strip()


def test_fold_and_exact_shortcuts_agree_with_unicode_rules() -> None:
    texts = [chr(i) + "Ab" + chr(i) for i in range(128)] + [chr(i) for i in range(128)]
    texts += [*_TEXTS, "x" * 300 + "É", " Ünïcode " * 40]  # longer than the cached length
    for text in texts + texts:  # the second round hits the cache
        assert fold(text) == _fold_reference(text), repr(text)
        assert exact(text) == unicodedata.normalize("NFC", text), repr(text)


_DECEASED = "Patient.deceased.exists() and Patient.deceased != false"


@pytest.mark.parametrize(
    "elements",
    [
        {"deceasedBoolean": True},
        {"deceasedBoolean": False},
        {"deceasedDateTime": "2015-02-14T13:42:00+10:00"},
        {"deceasedDateTime": ""},
        {"deceasedBoolean": False, "_deceasedBoolean": {"id": "x"}},
        {"deceasedBoolean": False, "deceasedDateTime": "2015"},
        {"deceasedBoolean": True, "deceased": False},
        {"deceasedBoolean": 0},
        {"deceasedBoolean": None},
        {"deceasedBoolean": [True, False]},
        {"deceasedString": "x"},
        {"_deceasedDateTime": {"extension": []}},
        {},
    ],
)
def test_deceased_shortcut_agrees_with_fhirpathpy(elements: dict[str, Any]) -> None:
    fast = compile_exists_not_false(_DECEASED, root_type="Patient")
    assert fast is not None
    reference = compile_fhirpath(_DECEASED)
    for resource_type in ("Patient", "Person"):
        resource = {"resourceType": resource_type, "id": "p", "gender": "male", **elements}
        assert fast(resource) == reference(resource)


# ---- regeneration (run with the extraction code whose output is the reference) ----------


def _audit_events() -> list[dict[str, Any]]:
    """AuditEvents shaped like the server's own (``audit.events.build_audit_event``)."""
    from audit.events import AccessRecord, Interaction, build_audit_event

    at = datetime(2026, 3, 5, 1, 15, 30, 123456, tzinfo=UTC)
    seoul = at.astimezone(timezone(timedelta(hours=9)))
    records = [
        AccessRecord(Interaction.READ, at, 200, user_id="u1", client_id="app1",
                     roles=["doctor"], purpose_of_use=["TREAT"], network_address="10.0.0.7",
                     resource_type="Patient", resource_id="p1", version_id="3",
                     patient_ids=["p1"], request_id="req-1"),
        AccessRecord(Interaction.SEARCH, seoul, 200, user_id="u2", client_id="app1",
                     roles=["nurse", "doctor"], network_address="ward-3.local",
                     patient_ids=["p1", "p2", "p3"],
                     query="Observation?subject=Patient/p1&code=http://loinc.org|718-7",
                     request_id="req-2"),
        AccessRecord(Interaction.CREATE, at, 201, client_id="ingest", resource_type="Observation",
                     resource_id="o9", version_id="1", patient_ids=["p2"]),
        AccessRecord(Interaction.DELETE, at, 204, user_id="admin", resource_type="Encounter",
                     resource_id="e1", network_address="2001:db8::1"),
        AccessRecord(Interaction.READ, at, 404, user_id="u3", resource_type="Patient",
                     resource_id="p9", denied=True, description="outside compartment"),
        AccessRecord(Interaction.OPERATION, at, 500, client_id="app2", operation="$export",
                     description="store unavailable"),
        AccessRecord(Interaction.LOGIN, at, 401, user_id="u4", network_address="192.0.2.1"),
        AccessRecord(Interaction.TOKEN_ISSUE, at, 200, client_id="app3", roles=["system"]),
        AccessRecord(Interaction.HL7_INGEST, at, 201, client_id="mllp", resource_type="Patient",
                     resource_id="p4", patient_ids=["p4"]),
        AccessRecord(Interaction.HISTORY_SYSTEM, at, 200, user_id="u5"),
        AccessRecord(Interaction.BATCH, at, 200, user_id="u6", client_id="app4",
                     patient_ids=["p5", "p6"], request_id="req-7"),
        AccessRecord(Interaction.PATCH, at, 403, user_id="u7", resource_type="MedicationRequest",
                     resource_id="m1", patient_ids=["p7"]),
    ]  # fmt: skip
    return [
        build_audit_event(r, server_id="medicore-1", event_id=f"audit-{i}")
        for i, r in enumerate(records)
    ]


_DATES = [
    "2024", "2024-02", "2024-12", "9999", "9999-12", "0001", "2024-02-29", "2023-02-29",
    "2024-03-05", "2024-03-05T10:15:00+09:00", "2024-03-05T10:15:00Z", "2024-03-05T10:15:00-05:30",
    "2024-03-05T10:15:00.123Z", "2024-03-05T10:15:00.1+05:30", "2024-03-05T10:15:00.12Z",
    "2024-03-05T10:15:00.1234567Z", "2024-03-05T10:15", "2024-03-05T10:15Z", "2024-03-05T10",
    "2024-03-05T24:00:00Z", "2024-03-05T23:60:00Z", "2024-03-05T23:59:60Z", " 2024-03-05 ",
    "2024-03-05T10:15:00-00:00", "2024-03-05T10:15:00+14:00", "2024-03-05T10:15:00+99:99",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00", "2024-13-01", "2024-00-10", "2024-01-00", "2024-1-5",
    "2024-03-05T10:15:00", "2024-03-05 10:15:00Z", "2024-03-05t10:15:00z", "", "x",
    "\u0662\u0660\u0662\u0664-03-05", "2024-03-05T10:15:00+09:00\n", "2024-03-05T10:15:00.Z",
    "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "2000-02-29T12:00:00.000+00:00",
]  # fmt: skip

_TEXTS = [
    "ÉLOÏSE", "eloise", "Straße", "홍길동",
    "\u1112\u1169\u11bc\u1100\u1175\u11af\u1103\u1169\u11bc",
    "ＡＢＣ", "İstanbul", "ǅemal", "ﬁnn", "Ω", "  Trailing Space  ", "\u00a0Nbsp\u00a0",
    "\u2000wide\u2000", "\u0301", "", "ΣΑΣ", "Tab\there", "\x1cSep\x1f", "MiXeD CaSe", "ß",
    "Ångström", "ｶﾀｶﾅ", "e\u0301", "\u212b", "Chalmers", "Peter James", "123 Main St.",
]  # fmt: skip


def _edge_cases() -> list[dict[str, Any]]:
    """Hand-made resources for the corners fast paths must keep (dates, folding, ...)."""
    cases: list[dict[str, Any]] = []
    for i, text in enumerate(_DATES):
        cases.append({
            "resourceType": "Observation", "id": f"date-{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "effectiveDateTime": text, "valueDateTime": text,
            "meta": {"lastUpdated": text},
        })  # fmt: skip
    cases.append({
        "resourceType": "MedicationRequest", "id": "many-dates", "status": "active",
        "intent": "order", "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "Ibuprofen 200 mg"},
        "authoredOn": "2024-03-05",
        "dosageInstruction": [{"timing": {"event": _DATES}}, {"timing": {"event": None}}, {}],
    })  # fmt: skip
    cases.append({
        "resourceType": "Encounter", "id": "periods", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": "2024-03-05T10:15:00+09:00", "end": "2024-03"},
        "location": [
            {"location": {"reference": "Location/1"}, "period": {"start": "2024"}},
            {"location": {"reference": "Location/2"}, "period": {"end": "2024-03-05T10:15:00Z"}},
            {"location": {"reference": "Location/3"}, "period": {"start": "bad", "end": 5}},
            {"location": {"reference": "Location/4"}, "period": {}},
        ],
        "length": {"value": 90, "unit": "min", "system": "http://unitsofmeasure.org",
                   "code": "min"},
    })  # fmt: skip
    cases.append({
        "resourceType": "Patient", "id": "texts",
        "name": [{"family": t, "given": [t, "Ann", None, 5], "text": t, "prefix": t}
                 for t in _TEXTS] + [None, "plain", {"given": "not-a-list"}],
        "address": [{"line": [t], "city": t, "country": "KR", "postalCode": "04524"}
                    for t in _TEXTS],
        "telecom": [
            {"system": "email", "value": "Ann@Example.org"},
            {"system": "phone", "value": "+82 2 123 4567", "use": "home"},
            {"system": "url", "value": "https://example.org"},
            {"system": "other", "value": "x"}, {"system": "pager"}, {"value": "no-system"},
            {"system": "fax", "value": 12345},
        ],
        "identifier": [
            {"system": "urn:oid:1.2.3", "value": "A-1",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                  "code": "MR", "display": "Médical récord"}],
                      "text": "Numéro"}},
            {"value": "B-2", "type": {"text": "Only Text"}},
            {"system": "urn:oid:1.2.3"}, None, "bare-string", 42,
        ],
        "gender": "female", "active": True, "birthDate": "1974-12-25",
        "deceasedDateTime": "2024-03-05T10:15:00+09:00",
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "ko",
                                                    "display": "한국어"}], "text": "Korean"}}],
        "generalPractitioner": [
            {"reference": "Practitioner/1"}, {"reference": "Practitioner/1/_history/2"},
            {"reference": "#contained"}, {"reference": ""}, {"reference": "urn:uuid:abc"},
            {"reference": "http://x.org/fhir/Practitioner/7|2"}, {"reference": "a/b/c"},
            {"reference": "Practitioner//1"}, {"reference": "Practitioner/1/_history"},
            {"identifier": {"system": "urn:npi", "value": "123"}, "display": "Dr. Who"},
            {"reference": "Organization/o1", "identifier": {"value": "o-1"}},
            {"type": "Practitioner"}, "Practitioner/raw", None,
        ],
        "managingOrganization": {"reference": "Organization/1"},
        "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"}],
        "meta": {"profile": ["http://example.org/p", 5], "source": "#src",
                 "tag": [{"system": "urn:t", "code": "T", "display": "Tág"}],
                 "security": [{"code": "R"}], "lastUpdated": "2024-03-05T10:15:00.5Z"},
    })  # fmt: skip
    cases.append({"resourceType": "Patient", "id": "deceased-bool", "deceasedBoolean": True,
                  "gender": None, "name": [], "active": False})  # fmt: skip
    quantities: list[Any] = [
        {"value": 5.4, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
        {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        {"value": 37, "system": "http://unitsofmeasure.org", "code": "Cel"},
        {"value": 2, "system": "http://unitsofmeasure.org", "code": "h"},
        {"value": 98, "system": "http://unitsofmeasure.org", "code": "%"},
        {"value": 1.5, "unit": "kg"},
        {"value": True, "code": "x"},
        {"value": "7"},
        {"value": 0, "system": "http://unitsofmeasure.org", "code": "kg/m2"},
        {"value": -3.25, "system": "http://unitsofmeasure.org", "code": "umol/L"},
        {"value": 10**20, "system": "http://other", "code": "g"},
    ]
    for i, quantity in enumerate(quantities):
        cases.append({
            "resourceType": "Observation", "id": f"qty-{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": f"c{i}", "display": "Ç"},
                                {"code": "local"}], "text": "Code Text"},
            "subject": {"reference": "Patient/p1"}, "valueQuantity": quantity,
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": quantity},
                {"code": {"text": "Only text"}, "valueCodeableConcept": {"text": "Présent"}},
                {"code": {"coding": [{"code": "n"}]}, "valueString": "Some Text"},
                {"code": {"coding": [{"code": "d"}]},
                 "dataAbsentReason": {"coding": [{"code": "unknown"}]}},
                None,
            ],
        })  # fmt: skip
    cases.append({
        "resourceType": "Observation", "id": "choices", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "x"}]},
        "valuex": "lowercase suffix: not a choice", "valueString": "Ünïcode Välue",
        "effectivePeriod": {"start": "2024-03-05T10:15:00Z"}, "effective": None,
        "category": [None, {"coding": [None, {"code": "vital-signs"}]}, "text-category"],
        "subject": {"reference": "Group/g1"}, "focus": [{"reference": "Patient/p1"}],
        "hasMember": [{"reference": "Observation/o1/_history/1"}],
    })  # fmt: skip
    cases.append({
        "resourceType": "Observation", "id": "codeable-value", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "883-9"}]},
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                             "code": "112144000", "display": "Blood group A"}],
                                 "text": "A"},
        "valueSampledData": {"origin": {"value": 0}}, "dataAbsentReason": {"text": "n/a"},
        "effectiveInstant": "2024-03-05T10:15:00.000+09:00",
    })  # fmt: skip
    cases.append({
        "resourceType": "Provenance", "id": "prov", "recorded": "2024-03-05T10:15:00.123+09:00",
        "occurredDateTime": "2024-03-05", "target": [{"reference": "Patient/p1"},
                                                     {"reference": "Observation/o1"}],
        "agent": [{"who": {"reference": "Practitioner/1"},
                   "role": [{"coding": [{"system": "urn:r", "code": "author"}]}],
                   "type": {"coding": [{"code": "author"}]}}],
        "entity": [{"role": "source", "what": {"identifier": {"value": "doc-1"}}}],
        "signature": [{"type": [{"system": "urn:iso-astm:E1762-95:2013",
                                 "code": "1.2.840.10065.1.12.1.1"}]}],
    })  # fmt: skip
    cases.append({"resourceType": "AuditEvent", "id": "sparse", "recorded": "2024-03-05",
                  "agent": [{"who": {"reference": "Patient/p1"}, "network": {"address": 7}},
                            {"who": {"reference": "Device/d1"}, "requestor": False}],
                  "entity": [{"what": {"reference": "Patient/p2/_history/4"}}, {}]})  # fmt: skip
    return cases


def _regenerate() -> None:
    registry = SearchRegistry.default()
    cases: list[dict[str, Any]] = []
    for path in _example_files():
        resource = json.loads(path.read_text(encoding="utf-8"))
        cases.append({"name": path.name, "expected": _encode(extract_index(resource, registry))})
    for resource in _audit_events() + _edge_cases():
        name = f"{resource['resourceType']}-{resource['id']}"
        expected = _encode(extract_index(resource, registry))
        cases.append({"name": name, "resource": resource, "expected": expected})
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(
        '{"cases": [\n' + ",\n".join(_dumps(c) for c in cases) + "\n]}\n", encoding="utf-8"
    )
    print(f"wrote {len(cases)} cases to {FIXTURE}")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    _regenerate()
