"""Parsing: values, modifiers, prefixes, controls and the 400s that name the parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from fhir_server.search.errors import SearchError
from fhir_server.search.parse import parse_search
from fhir_server.search.query import (
    CHAIN,
    HAS,
    MISSING,
    NUMBER,
    Cursor,
    DateValue,
    Include,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringValue,
    TokenValue,
    without_type,
)
from fhir_server.search.registry import SearchRegistry

REGISTRY = SearchRegistry.default()
BASE = "http://medicore.test/fhir"


def parse(resource_type: str | None, params: Sequence[tuple[str, str]], **kw: Any) -> SearchQuery:
    return parse_search(resource_type, params, REGISTRY, base_url=BASE, **kw)


def test_token_forms() -> None:
    query = parse("Patient", [("identifier", "sys|1,|2,sys|,3"), ("gender", "a\\,b")])
    assert query.criteria[0].values == (
        TokenValue("sys", "1"),
        TokenValue("", "2"),
        TokenValue("sys", None),
        TokenValue(None, "3"),
    )
    assert query.criteria[1].values == (TokenValue(None, "a,b"),)


def test_comma_is_or_and_repetition_is_and() -> None:
    query = parse("Patient", [("gender", "male,female"), ("gender", "other")])
    assert [len(c.values) for c in query.criteria] == [2, 1]


def test_string_is_folded() -> None:
    query = parse("Patient", [("name", "ÉLOÏSE"), ("family:exact", "Kim")])
    assert query.criteria[0].values == (StringValue("start", "eloise"),)
    assert query.criteria[1].values == (StringValue("exact", "Kim"),)


def test_date_prefix_and_precision() -> None:
    (criterion,) = parse("Observation", [("date", "ge2020-02")]).criteria
    (value,) = criterion.values
    assert isinstance(value, DateValue) and value.prefix == "ge"
    assert value.high - value.low == 29 * 86_400_000 - 1  # February 2020 has 29 days


@pytest.mark.parametrize("bad", ["2020-13", "2020-02-30", "20", "ge", "2020-01-01T25:00:00Z"])
def test_malformed_date_is_a_400_naming_the_parameter(bad: str) -> None:
    with pytest.raises(SearchError) as info:
        parse("Observation", [("date", bad)])
    assert info.value.param == "date"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_count", "-1"),
        ("_count", "ten"),
        ("value-quantity", "abc"),
        ("gender:exact", "male"),
        ("birthdate:missing", "maybe"),
        ("_sort", "nonexistent"),
        ("_total", "lots"),
        ("_summary", "maybe"),
        ("_include", "Observation:status"),
        ("_include", "Nope:subject"),
        ("identifier:of-type", "a|b"),
        ("name:contains", ""),
    ],
)
def test_malformed_values_are_400s(name: str, value: str) -> None:
    with pytest.raises(SearchError) as info:
        parse("Observation" if name in ("value-quantity",) else "Patient", [(name, value)])
    assert info.value.param.split(":")[0] == name.split(":")[0]


def test_unknown_parameters_are_ignored_or_strict() -> None:
    query = parse("Patient", [("nonsense", "1"), ("_text", "x"), ("gender", "male")])
    assert query.ignored == ["nonsense", "_text"]
    assert len(query.criteria) == 1
    with pytest.raises(SearchError) as info:
        parse("Patient", [("nonsense", "1")], strict=True)
    assert info.value.param == "nonsense"


def test_reference_forms() -> None:
    query = parse(
        "Observation",
        [
            ("subject", "Patient/1"),
            ("subject", f"{BASE}/Patient/2"),
            ("subject:Patient", "3"),
            ("patient", "4"),
            ("subject", "5"),
            ("subject", "http://elsewhere/fhir/Patient/6"),
            ("subject", "Patient/7/_history/2"),
        ],
    )
    values = [c.values[0] for c in query.criteria]
    assert values == [
        ReferenceValue("Patient", "1"),
        ReferenceValue("Patient", "2"),
        ReferenceValue("Patient", "3"),
        ReferenceValue("Patient", "4"),
        ReferenceValue(None, "5"),
        ReferenceValue("", "http://elsewhere/fhir/Patient/6"),
        ReferenceValue("Patient", "7"),
    ]


def test_quantity_with_ucum_unit_goes_canonical() -> None:
    (criterion,) = parse(
        "Observation", [("value-quantity", "ge5.4|http://unitsofmeasure.org|mg")]
    ).criteria
    assert criterion.param == "value-quantity:canonical" and criterion.kind == NUMBER
    assert criterion.values[0].code == "g"
    assert criterion.values[0].value == pytest.approx(0.0054)


def test_missing_chain_and_has() -> None:
    query = parse(
        "Observation",
        [
            ("subject:missing", "true"),
            ("subject:Patient.name", "kim"),
            ("_has:Provenance:target:agent", "Practitioner/1"),
        ],
    )
    assert [c.kind for c in query.criteria] == [MISSING, CHAIN, HAS]


def test_controls() -> None:
    query = parse(
        "Observation",
        [
            ("_count", "5000"),
            ("_sort", "-date,_id"),
            ("_include:iterate", "Observation:subject"),
            ("_revinclude", "Provenance:target"),
            ("_total", "accurate"),
            ("_summary", "data"),
            ("_elements", "status, code"),
        ],
    )
    assert query.count == 1000
    assert query.sort == (SortKey("date", True), SortKey("_id", False))
    subject_targets = REGISTRY.get("Observation", "subject").targets  # type: ignore[union-attr]
    assert query.include == (Include("Observation", "subject", None, True, subject_targets),)
    assert query.revinclude == (
        Include("Provenance", "target", reachable=REGISTRY.get("Provenance", "target").targets),  # type: ignore[union-attr]
    )
    assert (query.total, query.summary, query.elements) == ("accurate", "data", ("status", "code"))


def test_system_search_types() -> None:
    assert parse(None, [("_type", "Patient,Observation")]).resource_types == (
        "Patient",
        "Observation",
    )
    with pytest.raises(SearchError):
        parse(None, [("_type", "Medication")])


def test_cursor_round_trip_and_key() -> None:
    cursor = Cursor("next", ("a", 1.5), 42)
    assert Cursor.decode(cursor.encode()) == cursor
    query = parse("Patient", [("identifier", "s|1"), ("_count", "3"), ("gender", "male")])
    again = parse("Patient", [("gender", "male"), ("identifier", "s|1")])
    assert query.key() == again.key() == "Patient?gender=male&identifier=s|1"


@pytest.mark.parametrize("value", ["²", "١", "-1", "1.5", ""])
def test_count_takes_ascii_digits_only(value: str) -> None:
    with pytest.raises(SearchError) as info:
        parse("Patient", [("_count", value)])
    assert info.value.param == "_count"


def test_huge_count_is_capped_not_an_error() -> None:
    assert parse("Patient", [("_count", "9" * 5000)]).count == 1000
    assert parse("Patient", [("_count", "0" * 20 + "7")]).count == 7


@pytest.mark.parametrize(
    "values",
    [["x", {"a": 1}], ["x", ["a"]], [{"$ne": None}], [10**30]],
    ids=["dict", "list", "operator", "over-64-bit"],
)
def test_cursor_values_must_be_scalars(values: list[Any]) -> None:
    import base64
    import json

    raw = json.dumps(["next", values[:-1], values[-1]]).encode()
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(SearchError) as info:
        Cursor.decode(token)
    assert info.value.param == "_cursor"


def test_too_many_values_criteria_sort_keys_or_nesting_are_400s() -> None:
    cases: list[tuple[list[tuple[str, str]], str]] = [
        ([("name", ",".join(["x"] * 201))], "name"),
        ([("name", "x")] * 201, "name"),
        ([("_sort", ",".join(["name"] * 9))], "_sort"),
        ([("_has:Patient:link:" * 5 + "name", "x")], "_has:Patient:link:" * 5 + "name"),
        ([("link:Patient." * 5 + "name", "x")], "link:Patient." * 5 + "name"),
    ]
    for params, name in cases:
        with pytest.raises(SearchError) as info:
            parse("Patient", params)
        assert info.value.param == name
    parse("Patient", [("name", ",".join(["x"] * 200))] * 200)  # the limits themselves pass
    parse("Patient", [("link:Patient." * 4 + "name", "x")])


def test_nested_fault_names_the_whole_parameter() -> None:
    with pytest.raises(SearchError) as info:
        parse("Observation", [("subject:Patient.birthdate", "2020-13")])
    assert info.value.param == "subject:Patient.birthdate"
    with pytest.raises(SearchError) as info:
        parse("Patient", [("_has:Observation:subject:date", "2020-13")])
    assert info.value.param == "_has:Observation:subject:date"


def test_include_target_type_must_be_supported() -> None:
    with pytest.raises(SearchError) as info:
        parse("Observation", [("_include", "Observation:subject:Bogus")])
    assert info.value.param == "_include"


@pytest.mark.parametrize(
    ("resource_type", "params", "reads_audit"),
    [
        ("Observation", [("_include", "Observation:subject")], False),  # Patient, Group...
        ("Encounter", [("_include", "Encounter:patient")], False),
        ("Provenance", [("_include", "Provenance:target")], True),  # Reference(Any)
        ("Patient", [("_include", "*")], True),
        ("AuditEvent", [("_include", "AuditEvent:entity:Patient")], True),  # searched
        ("Patient", [("_revinclude", "AuditEvent:patient")], True),
        ("Patient", [("_revinclude", "Observation:subject")], False),
        ("Patient", [("_has:AuditEvent:patient:action", "R")], True),
        ("Provenance", [("target._id", "x")], True),  # an untyped chain may end there
        ("Provenance", [("target.name", "Kim")], False),  # AuditEvent has no "name"
        ("Observation", [("subject.name", "Kim")], False),
    ],
)
def test_which_searches_read_audit_events(
    resource_type: str, params: list[tuple[str, str]], reads_audit: bool
) -> None:
    """A search that may read AuditEvents makes the server catch their index up first:
    only those, not every search with an include."""
    assert parse(resource_type, params).involves("AuditEvent") is reads_audit


def test_conditional_criteria_leave_audit_events_out_of_untyped_chains() -> None:
    untyped = parse("Provenance", [("target._id", "x")]).criteria[0]
    narrowed = without_type(untyped, "AuditEvent")
    assert narrowed is not None
    targets = [t for t, _ in narrowed.values[0].targets]
    assert "AuditEvent" not in targets and "Patient" in targets
    assert (
        without_type(
            parse("Provenance", [("target:AuditEvent._id", "x")]).criteria[0], "AuditEvent"
        )
        is None
    )
    has = parse("Patient", [("_has:AuditEvent:patient:action", "R")]).criteria[0]
    assert without_type(has, "AuditEvent") is None
