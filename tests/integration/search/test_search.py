"""Search behaviour on both stores, against the official R4 examples."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from fhir_server.search.errors import SearchError
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import mongo_search_filter
from tests.integration.search.stores import Backend, examples

OBS_ON_EXAMPLE = {
    "blood-pressure",
    "bmi",
    "body-temperature",
    "example",
    "eye-color",
    "heart-rate",
    "satO2",
    "vitals-panel",
}


async def test_id_and_token_forms(loaded: Backend) -> None:
    assert await loaded.ids("Patient", [("_id", "example,f001")]) == {"example", "f001"}
    assert await loaded.ids("Observation", [("code", "http://loinc.org|85354-9")]) == {
        "blood-pressure"
    }
    assert await loaded.ids("Observation", [("code", "85354-9")]) == {"blood-pressure"}
    assert await loaded.ids("Observation", [("code", "http://snomed.info/sct|85354-9")]) == set()
    assert await loaded.ids("Observation", [("status", "|final")]) >= {"blood-pressure"}
    female = {
        p["id"]
        for p in examples()
        if p["resourceType"] == "Patient" and p.get("gender") == "female"
    }
    assert female and await loaded.ids("Patient", [("gender", "female")]) == female


async def test_identifier_and_of_type(loaded: Backend) -> None:
    found = await loaded.ids("Patient", [("identifier", "urn:oid:1.2.36.146.595.217.0.1|12345")])
    assert found == {"example"}
    assert await loaded.ids("Patient", [("identifier", "|12345")]) == set()
    of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"
    # Patient-xcda also carries an MR identifier 12345 (another assigner system)
    assert await loaded.ids("Patient", [("identifier:of-type", of_type)]) == {"example", "xcda"}


async def test_token_not_and_text(loaded: Backend) -> None:
    everyone = await loaded.ids("Patient", [])
    male = await loaded.ids("Patient", [("gender", "male")])
    assert await loaded.ids("Patient", [("gender:not", "male")]) == everyone - male
    assert await loaded.ids("Observation", [("code:text", "blood pressure")]) == {"blood-pressure"}


async def test_string_default_exact_contains(loaded: Backend) -> None:
    assert await loaded.ids("Patient", [("family", "chalm")]) == {"example"}
    assert await loaded.ids("Patient", [("family", "CHALMERS")]) == {"example"}
    assert await loaded.ids("Patient", [("family:exact", "chalmers")]) == set()
    assert await loaded.ids("Patient", [("family:exact", "Chalmers")]) == {"example"}
    assert await loaded.ids("Patient", [("family:contains", "alme")]) == {"example"}
    assert await loaded.ids("Patient", [("name", "jim")]) == {"example"}


async def test_hangul_and_accents(backend: Backend) -> None:
    import unicodedata

    name = "김민준"
    await backend.put({"resourceType": "Patient", "id": "kr", "name": [{"text": name}]})
    await backend.put({"resourceType": "Patient", "id": "fr", "name": [{"family": "Éloïse"}]})
    decomposed = unicodedata.normalize("NFD", name)
    assert await backend.ids("Patient", [("name", unicodedata.normalize("NFD", "김민"))]) == {"kr"}
    assert await backend.ids("Patient", [("name", "김민")]) == {"kr"}
    assert await backend.ids("Patient", [("name:exact", decomposed)]) == {"kr"}
    assert await backend.ids("Patient", [("family", "eloise")]) == {"fr"}


async def test_reference_forms(loaded: Backend) -> None:
    assert await loaded.ids("Observation", [("subject", "Patient/example")]) == OBS_ON_EXAMPLE
    assert await loaded.ids("Observation", [("patient", "example")]) == OBS_ON_EXAMPLE
    assert await loaded.ids("Observation", [("subject:Patient", "example")]) == OBS_ON_EXAMPLE
    absolute = "http://medicore.test/fhir/Patient/example"
    assert await loaded.ids("Observation", [("subject", absolute)]) == OBS_ON_EXAMPLE
    assert await loaded.ids("Observation", [("subject", "example")]) == OBS_ON_EXAMPLE
    assert await loaded.ids("Observation", [("subject", "Group/example")]) == set()


async def test_reference_identifier(backend: Backend) -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"identifier": {"system": "urn:mrn", "value": "77"}},
    }
    await backend.put(obs)
    assert await backend.ids("Observation", [("subject:identifier", "urn:mrn|77")]) == {"o1"}
    assert await backend.ids("Observation", [("subject:identifier", "urn:mrn|78")]) == set()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2012-09-17", {"blood-pressure"}),
        ("eq2012-09", {"blood-pressure"}),
        ("ne2012-09-17", None),
        ("lt2012-09-17", None),
        ("gt2012-09-17", None),
        ("sa2012-09-17", None),
        ("eb2012-09-17", None),
        ("ap2012-09-17", {"blood-pressure"}),
    ],
)
async def test_date_prefixes(loaded: Backend, value: str, expected: set[str] | None) -> None:
    found = await loaded.ids("Observation", [("date", value), ("code", "85354-9")])
    if expected is None:
        assert found == set()
    else:
        assert found == expected


async def test_date_precision_and_timezone(backend: Backend) -> None:
    obs = {
        "resourceType": "Observation",
        "id": "tz",
        "status": "final",
        "code": {"text": "x"},
        "effectiveDateTime": "2020-03-01T01:30:00+09:00",
    }
    await backend.put(obs)
    assert await backend.ids("Observation", [("date", "2020-02-29")]) == {"tz"}
    assert await backend.ids("Observation", [("date", "2020-03-01")]) == set()
    assert await backend.ids("Observation", [("date", "ge2020-02-29T16:30:00Z")]) == {"tz"}
    assert await backend.ids("Observation", [("date", "gt2020-02-29T16:30:00Z")]) == set()
    assert await backend.ids("Observation", [("date", "le2020-02-29T16:30:00Z")]) == {"tz"}
    assert await backend.ids("Observation", [("date", "2020")]) == {"tz"}


async def test_quantity_and_ucum(backend: Backend) -> None:
    obs = {
        "resourceType": "Observation",
        "id": "q",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": 5.4, "system": "http://unitsofmeasure.org", "code": "mg"},
    }
    await backend.put(obs)
    assert await backend.ids("Observation", [("value-quantity", "5.4")]) == {"q"}
    assert await backend.ids("Observation", [("value-quantity", "5")]) == {"q"}
    assert await backend.ids("Observation", [("value-quantity", "5.0")]) == set()
    assert await backend.ids("Observation", [("value-quantity", "gt5.3")]) == {"q"}
    assert await backend.ids("Observation", [("value-quantity", "lt5.3")]) == set()
    ucum = "http://unitsofmeasure.org"
    assert await backend.ids("Observation", [("value-quantity", f"5.4|{ucum}|mg")]) == {"q"}
    assert await backend.ids("Observation", [("value-quantity", f"0.0054|{ucum}|g")]) == {"q"}
    assert await backend.ids("Observation", [("value-quantity", "5.4||mg")]) == {"q"}
    assert await backend.ids("Observation", [("value-quantity", "5.4||kg")]) == set()


async def test_composite(loaded: Backend) -> None:
    found = await loaded.ids(
        "Observation", [("component-code-value-quantity", "http://loinc.org|8480-6$107")]
    )
    assert found == {"blood-pressure"}
    none = await loaded.ids(
        "Observation", [("component-code-value-quantity", "http://loinc.org|8480-6$60")]
    )
    assert none == set()
    weight = await loaded.ids("Observation", [("code-value-quantity", "29463-7$gt180")])
    assert weight == {"example"}


async def test_missing(loaded: Backend) -> None:
    everyone = await loaded.ids("Patient", [])
    with_birthdate = await loaded.ids("Patient", [("birthdate:missing", "false")])
    without = await loaded.ids("Patient", [("birthdate:missing", "true")])
    assert with_birthdate and without
    assert with_birthdate | without == everyone
    assert not with_birthdate & without


async def test_chain_and_has(loaded: Backend) -> None:
    assert await loaded.ids("Observation", [("subject:Patient.name", "peter")]) == OBS_ON_EXAMPLE
    assert await loaded.ids("Observation", [("patient.family", "chalmers")]) == OBS_ON_EXAMPLE
    assert await loaded.ids("Observation", [("patient.family", "nobody")]) == set()
    has = await loaded.ids("Patient", [("_has:Observation:patient:code", "85354-9")])
    assert has == {"example"}


async def test_mongo_refuses_a_chain_or_has_it_would_have_to_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MongoDB resolves chain and _has targets into one $in; past its bound the search is
    a 400 naming the parameter, never an answer from a cut list (SQLite joins instead)."""
    loaded = Backend("mongo", SearchRegistry.default())
    await loaded.open()
    for resource in examples():
        await loaded.put(resource)
    monkeypatch.setattr(mongo_search_filter, "MAX_RESOLVED", 1)
    assert await loaded.ids("Observation", [("patient.family", "chalmers")]) == OBS_ON_EXAMPLE
    with pytest.raises(SearchError) as chain:
        await loaded.ids("Observation", [("patient.gender", "male,female")])
    assert chain.value.param == "patient.gender"
    with pytest.raises(SearchError) as has:
        await loaded.ids("Patient", [("_has:Observation:patient:status", "final")])
    assert has.value.param == "_has:Observation:patient:status"


async def test_contains_and_text_reach_past_a_line_break(backend: Backend) -> None:
    """Both stores find text on the second line of a value (MongoDB's ``.`` would not)."""
    await backend.put(
        {
            "resourceType": "Patient",
            "id": "two-lines",
            "address": [{"text": "12 Sejong-daero\nJung-gu Seoul"}],
            "communication": [{"language": {"text": "Korean\nsign language"}}],
        }
    )
    await backend.put({"resourceType": "Patient", "id": "other", "address": [{"text": "Busan"}]})
    assert await backend.ids("Patient", [("address:contains", "seoul")]) == {"two-lines"}
    assert await backend.ids("Patient", [("language:text", "sign")]) == {"two-lines"}


async def test_tombstones_never_match(backend: Backend) -> None:
    patient = {"resourceType": "Patient", "id": "gone", "gender": "other"}
    await backend.put(patient)
    assert await backend.ids("Patient", [("gender", "other")]) == {"gone"}
    await backend.put(patient, deleted=True)
    assert await backend.ids("Patient", [("gender", "other")]) == set()


async def test_paging_forward_and_back(loaded: Backend) -> None:
    all_ids = [m.id for m in (await loaded.search("Observation", [("_count", "100")])).matches]
    seen: list[str] = []
    result = await loaded.search("Observation", [("_count", "3"), ("_total", "accurate")])
    pages = [result]
    assert result.total == len(all_ids)
    while result.next_cursor:
        seen += [m.id for m in result.matches]
        result = await loaded.search(
            "Observation", [("_count", "3"), ("_cursor", result.next_cursor)]
        )
        pages.append(result)
    seen += [m.id for m in result.matches]
    assert seen == all_ids
    assert result.prev_cursor is not None
    back = await loaded.search("Observation", [("_count", "3"), ("_cursor", result.prev_cursor)])
    assert [m.id for m in back.matches] == [m.id for m in pages[-2].matches]


async def test_sort_multi_key(loaded: Backend) -> None:
    result = await loaded.search("Patient", [("_sort", "gender,-birthdate"), ("_count", "100")])
    rows = [(m.id, m.body) for m in result.matches]
    import json

    keys = [
        (json.loads(body or b"{}").get("gender", ""), json.loads(body or b"{}").get("birthDate"))
        for _, body in rows
    ]
    genders = [g for g, _ in keys]
    assert genders == sorted(genders)
    for gender in set(genders):
        dates = [d for g, d in keys if g == gender and d]
        assert dates == sorted(dates, reverse=True)
    two = await loaded.search("Patient", [("_sort", "gender,-birthdate"), ("_count", "2")])
    rest = await loaded.search(
        "Patient",
        [("_sort", "gender,-birthdate"), ("_count", "100"), ("_cursor", two.next_cursor or "")],
    )
    assert [m.id for m in two.matches + rest.matches] == [i for i, _ in rows]


async def test_include_and_revinclude(loaded: Backend) -> None:
    result = await loaded.search(
        "Observation", [("code", "85354-9"), ("_include", "Observation:subject")]
    )
    assert [m.id for m in result.matches] == ["blood-pressure"]
    assert [(i.resource_type, i.id) for i in result.included] == [("Patient", "example")]
    rev = await loaded.search(
        "Patient", [("_id", "example"), ("_revinclude", "Observation:subject")]
    )
    assert {i.id for i in rev.included} == OBS_ON_EXAMPLE
    star = await loaded.search("Observation", [("_id", "blood-pressure"), ("_include", "*")])
    assert {(i.resource_type, i.id) for i in star.included} == {("Patient", "example")}


async def test_summary_count_and_total_none(loaded: Backend) -> None:
    counted = await loaded.search("Observation", [("_summary", "count")])
    assert counted.matches == [] and counted.total == 10
    none = await loaded.search("Observation", [("_total", "none")])
    assert none.total is None


async def test_system_search_by_type(loaded: Backend) -> None:
    result = await loaded.search(None, [("_type", "Patient,Provenance"), ("_count", "100")])
    assert {m.resource_type for m in result.matches} == {"Patient", "Provenance"}


async def test_matching_for_conditional(loaded: Backend) -> None:
    query = loaded.parse("Patient", [("gender", "male")])
    assert len(await loaded.matching(query, limit=2)) == 2


async def test_malformed_cursor_is_an_error(loaded: Backend) -> None:
    with pytest.raises(SearchError) as info:
        await loaded.search("Patient", [("_cursor", "%%%")])
    assert info.value.param == "_cursor"


async def test_count_of_one_token_matches_the_general_count(tmp_path: Path) -> None:
    """The index-only count path (``_summary=count`` on one token) agrees with the join."""
    import orjson

    from fhir_server.search.extract import extract_index
    from fhir_server.search.parse import parse_search
    from fhir_server.search.registry import SearchRegistry
    from fhir_server.storage import sqlite_search
    from fhir_server.storage.base import VersionWrite, WriteBatch
    from fhir_server.storage.sqlite import SqliteStore

    registry = SearchRegistry.default()
    store = SqliteStore(tmp_path / "count.db")
    await store.open()
    writes = []
    for i, (status, coded_twice) in enumerate(
        [("final", False), ("final", True), ("amended", False), ("final", False)]
    ):
        codings = [{"system": "http://loinc.org", "code": "718-7"}] * (2 if coded_twice else 1)
        obs = {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": status,
            "code": {"coding": codings},
            "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
        }
        writes.append(
            VersionWrite(
                "Observation",
                f"o{i}",
                1,
                0,
                "2026-01-01T00:00:00+00:00",
                "POST",
                orjson.dumps(obs),
                extract_index(obs, registry),
            )
        )
    enc = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
    }
    writes.append(
        VersionWrite(
            "Encounter",
            "e1",
            1,
            0,
            "2026-01-01T00:00:00+00:00",
            "POST",
            orjson.dumps(enc),
            extract_index(enc, registry),
        )
    )
    await store.commit(WriteBatch(writes=writes))
    for params, expected in (
        ([("status", "final")], 3),
        ([("code", "http://loinc.org|718-7")], 4),  # o1 carries the code twice: counted once
        ([("status", "final,amended")], 4),
        ([("status", "finished")], 0),  # the Encounter's status is not an Observation's
    ):
        query = parse_search("Observation", [*params, ("_summary", "count")], registry, base_url="")
        fast = await store._read(partial(sqlite_search.count, query=query))
        joined = await store._read(partial(sqlite_search.count, query=query, cap=10**9))
        assert fast == joined == expected, params
    await store.close()


async def test_include_from_a_full_page(backend: Backend) -> None:
    """A 1000-match page includes its targets (the frontier once overflowed SQLite's parser)."""
    await backend.put({"resourceType": "Patient", "id": "p"})
    for i in range(1000):
        await backend.put(
            {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "Patient/p"},
            }
        )
    result = await backend.search(
        "Observation", [("_count", "1000"), ("_include", "Observation:subject")]
    )
    assert len(result.matches) == 1000
    assert [(r.resource_type, r.id) for r in result.included] == [("Patient", "p")]
    again = await backend.search(
        "Patient", [("_revinclude:iterate", "Observation:subject"), ("_include", "*")]
    )
    assert len(again.included) == 1000
