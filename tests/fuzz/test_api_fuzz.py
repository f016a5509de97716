"""Hostile resource bodies and search query strings through the ASGI app on real SQLite.

Properties: always 2xx or 4xx; a 4xx is an OperationOutcome whose issue names the element
or parameter at fault; never a stack trace, and never a value of the input (the PHI
marker) echoed in an error body or in any log line.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.settings import Settings
from tests.fuzz.conftest import LogTrap, examples, no_leaks
from tests.integration.api.test_access_http import SAMPLES

pytestmark = pytest.mark.fuzz

T = TypeVar("T")
PHI = "ZZPHI123"
TYPES = ("Patient", "Encounter", "MedicationRequest", "Observation", "Provenance")
RICH: dict[str, dict[str, Any]] = {
    **SAMPLES,
    "Patient": {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.100", "value": f"{PHI}-MRN"}],
        "name": [{"family": PHI, "given": ["Minjun"]}],
        "gender": "female",
        "birthDate": "1988-01-01",
        "telecom": [{"system": "phone", "value": "010-1234-5678"}],
        "address": [{"city": "Seoul", "postalCode": "04524"}],
    },
    "Observation": {
        "resourceType": "Observation",
        "status": "preliminary",  # final ones need X-Provenance to change (409)
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-05T10:15:00+09:00",
        "valueQuantity": {"value": 105, "unit": "mg/dL", "system": "http://unitsofmeasure.org"},
    },
}


@dataclass
class LiveApi:
    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.http.request(method, url, **kwargs))


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The app (auth off: this is about input handling) on its own event-loop thread."""
    tmp = tmp_path_factory.mktemp("apifuzz")
    app = create_app(
        Settings(
            store=f"sqlite:///{tmp / 'store.db'}",
            data_dir=str(tmp / "data"),
            auth_required=False,
        ),
        hl7=Hl7Settings(mllp_port=0),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-api", daemon=True)
    thread.start()
    lifespan = app.router.lifespan_context(app)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    api = LiveApi(loop, http)
    api.run(lifespan.__aenter__())
    try:
        api.request("PUT", "/fhir/Patient/p1", json={**RICH["Patient"], "id": "p1"})
        for rtype in TYPES:
            assert api.request("POST", f"/fhir/{rtype}", json=RICH[rtype]).status_code == 201
        yield api
    finally:
        api.run(http.aclose())
        api.run(lifespan.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def check_answer(response: httpx.Response, *, names: tuple[str, ...] = ()) -> None:
    """2xx/3xx, or a 4xx OperationOutcome naming one of ``names`` (when given)."""
    event(str(response.status_code))
    assert response.status_code < 500, response.text
    text = response.text
    assert "Traceback" not in text and 'File "' not in text, text
    if response.status_code < 400:
        return
    assert PHI not in text, f"input value echoed in an error: {text}"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", text
    issues = outcome["issue"]
    assert issues and all(i.get("diagnostics") for i in issues), text
    if names and response.status_code in (400, 422):
        said = " ".join(
            " ".join(i.get("expression", [])) + " " + i.get("diagnostics", "") for i in issues
        )
        assert any(n in said for n in names), f"no issue names {names}: {text}"


# -- resource bodies ----------------------------------------------------------------------

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            " ",
            "2024-13-45",
            "2024-02-30T25:61:00Z",
            "0000-00-00",
            "9999-12-31T23:59:59.999999999+14:00",
            "1e999",
            "-0",
            "\u0000",
            "\ud7ff",
            "홍길동",
            "\u202e" + PHI,
            PHI,
            "Patient/" + PHI,
            "urn:uuid:" + PHI,
            "x" * 2000,
        ]
    ),
    st.text(max_size=20).map(lambda t: PHI + t),
)
junk = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["value", "system", "code", "x", "", "id"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) inside a resource, except resourceType."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if prefix == () and key == "resourceType":
                continue
            out.append((*prefix, key))
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            out.append((*prefix, n))
            out.extend(_paths(item, (*prefix, n)))
    return out


def _set(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = resource
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@st.composite
def mutated_resources(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(type, body, first element changed) from one of our samples, 1-3 mutations."""
    rtype = draw(st.sampled_from(TYPES))
    body = copy.deepcopy(RICH[rtype])
    first = ""
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        kind = draw(st.sampled_from(["replace", "replace", "add", "delete"]))
        if kind == "add" or not paths:
            key = draw(st.sampled_from(["birthDate", "status", "valueQuantity", "extension",
                                        "meta", "contained", "id", "_family", "unknownThing",
                                        "effectivePeriod", "deceasedBoolean", "text"]))  # fmt: skip
            path: tuple[Any, ...] = (key,)
            value = draw(junk)
        else:
            path = draw(st.sampled_from(paths))
            value = _DELETE if kind == "delete" else draw(junk)
        try:
            _set(body, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the parent
            continue
        first = first or str(path[0])
    return rtype, body, first


@given(case=mutated_resources())
@examples(150)
@example(case=("Patient", {"resourceType": "Patient", "birthDate": PHI}, "birthDate"))
@example(case=("Observation", {**RICH["Observation"], "valueQuantity": {"value": 10**30}}, "value"))
def test_hostile_resource_bodies(
    live_api: LiveApi, log_trap: LogTrap, case: tuple[str, dict[str, Any], str]
) -> None:
    rtype, body, first = case
    created = live_api.request("POST", f"/fhir/{rtype}", json=body)
    check_answer(created, names=(first, rtype))
    updated = live_api.request("PUT", f"/fhir/{rtype}/fz1", json={**body, "id": "fz1"})
    check_answer(updated, names=(first, rtype, "id"))
    no_leaks(log_trap, (PHI,))


@given(raw=st.binary(max_size=200) | junk.map(lambda j: json.dumps(j).encode()))
@examples(60)
@example(raw=b'{"resourceType": "Patient", "name": [{"family": "' + PHI.encode() + b'"')
@example(raw=b'{"resourceType": "Observation", "valueQuantity": {"value": 1e999}}')
@example(raw=b'{"resourceType": "Patient", "birthDate": NaN}')
@example(raw=b'{"resourceType": "Patient", "id": "a", "id": "b"}')
@example(raw=b"[" * 5000 + b"]" * 5000)
def test_bodies_that_are_not_resources(live_api: LiveApi, log_trap: LogTrap, raw: bytes) -> None:
    response = live_api.request(
        "POST", "/fhir/Patient", content=raw, headers={"Content-Type": "application/fhir+json"}
    )
    check_answer(response)
    no_leaks(log_trap, (PHI,))


# -- search query strings -----------------------------------------------------------------

PARAMS = {
    "Patient": ["name", "family", "given", "birthdate", "gender", "identifier", "_id",
                "address-city", "telecom", "general-practitioner", "link", "deceased"],
    "Observation": ["code", "subject", "patient", "date", "value-quantity", "status",
                    "category", "encounter", "code-value-quantity", "combo-code"],
    "Encounter": ["subject", "patient", "date", "status", "class", "participant"],
    "MedicationRequest": ["subject", "patient", "authoredon", "status", "intent", "code"],
    "Provenance": ["target", "recorded", "agent", "patient"],
}  # fmt: skip
MODIFIERS = ["", "", ":exact", ":contains", ":missing", ":not", ":text", ":above", ":below",
             ":in", ":of-type", ":identifier", ":Patient", ":bogus", ":"]  # fmt: skip
PREFIXES = ["", "", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "zz"]
VALUES = ["2024-03-05", "2024", "2024-13", "2024-03-05T10:15:00+09:00", "105", "1e309", "-1",
          "http://loinc.org|2345-7", "|", "||", "5.4|http://unitsofmeasure.org|mg/dL",
          "Patient/p1", "p1", "true", "false", "", ",", "a,b,,c", "\\,", "$", "2345-7$105",
          "9" * 40, "NaN"]  # fmt: skip
SPECIAL = ["_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
           "_has", "_format", "_type", "_lastUpdated", "_offset", "_list"]  # fmt: skip


@st.composite
def search_queries(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], list[str]]:
    """(type, query pairs, parameter names an error may name)."""
    rtype = draw(st.sampled_from(TYPES))
    pairs: list[tuple[str, str]] = []
    names: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        shape = draw(st.sampled_from(["plain", "plain", "chain", "special", "junk"]))
        if shape == "plain":
            name = draw(st.sampled_from(PARAMS[rtype])) + draw(st.sampled_from(MODIFIERS))
        elif shape == "chain":
            ref = draw(st.sampled_from(["subject", "patient", "target", "bogus"]))
            name = f"{ref}{draw(st.sampled_from(['', ':Patient', ':Bogus']))}." + draw(
                st.sampled_from([*PARAMS["Patient"], "x"])
            )
        elif shape == "special":
            name = draw(st.sampled_from(SPECIAL))
            if name == "_has":
                name += ":" + ":".join(
                    draw(st.sampled_from(["Observation", "subject", "code", "Bogus", ""]))
                    for _ in range(draw(st.integers(0, 3)))
                )
        else:
            name = draw(st.text("abcdefghijklmnopqrstuvwxyz-_:.", min_size=1, max_size=12))
        value = draw(st.sampled_from(PREFIXES)) + draw(
            st.sampled_from(VALUES)
            | st.integers(-(10**20), 10**20).map(str)
            | st.text(max_size=10).map(lambda t: PHI + t)
            | st.sampled_from([f"{t}:{p}" for t in TYPES for p in ("subject", "patient", "*")])
            | st.sampled_from(["-date", "name,-birthdate", "_lastUpdated", "bogus"])
        )
        pairs.append((name, value))
        names.append(name.split(":")[0].split(".")[0])
    return rtype, pairs, names


@given(query=search_queries())
@examples(250)
@example(query=("Patient", [("birthdate", "ge" + PHI)], ["birthdate"]))
@example(query=("Observation", [("_count", "9" * 40)], ["_count"]))
@example(query=("Patient", [("_has:Observation:subject:code", PHI)], ["_has"]))
def test_hostile_search_queries(
    live_api: LiveApi, log_trap: LogTrap, query: tuple[str, list[tuple[str, str]], list[str]]
) -> None:
    rtype, pairs, names = query
    response = live_api.request("GET", f"/fhir/{rtype}?{urlencode(pairs)}")
    check_answer(response, names=tuple(names))
    posted = live_api.request(
        "POST",
        f"/fhir/{rtype}/_search",
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    check_answer(posted, names=tuple(names))
    no_leaks(log_trap, (PHI,))


# -- JSON Patch, Bundles and conditional headers -----------------------------------------

_pointer = st.sampled_from(
    ["/name/0/family", "/name/-", "/birthDate", "/gender", "/id", "/resourceType", "/meta",
     "/identifier/0/value", "/name/99/given/0", "", "/", "~", "/a~2b", "/telecom/0/value",
     "/extension/-", "/status", "/subject/reference"]
)  # fmt: skip
_patch_op = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
     "path": _pointer},
    optional={"value": junk, "from": _pointer},
)  # fmt: skip


@given(ops=st.lists(_patch_op, max_size=4) | junk, rtype=st.sampled_from(TYPES))
@examples(100)
@example(ops=[{"op": "replace", "path": "/birthDate", "value": PHI}], rtype="Patient")
@example(ops=[{"op": "replace", "path": "/resourceType", "value": "Observation"}], rtype="Patient")
@example(ops=[{"op": "remove", "path": "/id"}], rtype="Patient")
def test_hostile_json_patches(live_api: LiveApi, log_trap: LogTrap, ops: Any, rtype: str) -> None:
    target = "p1" if rtype == "Patient" else None
    if target is None:
        found = live_api.request("GET", f"/fhir/{rtype}?_count=1").json()
        target = found["entry"][0]["resource"]["id"]
    response = live_api.request(
        "PATCH",
        f"/fhir/{rtype}/{target}",
        content=json.dumps(ops).encode(),
        headers={"Content-Type": "application/json-patch+json"},
    )
    check_answer(response, names=("path", "op", "value", "patch", "Patch", rtype))
    no_leaks(log_trap, (PHI,))


_entry = st.fixed_dictionaries(
    {"request": st.fixed_dictionaries(
        {"method": st.sampled_from(["POST", "PUT", "DELETE", "GET", "PATCH", "HEAD", ""]),
         "url": st.sampled_from(["Patient", "Patient/p1", "Observation?code=x", "Bogus/1",
                                 "", "Patient?", "Patient/../x", "urn:uuid:1"])},
        optional={"ifMatch": st.sampled_from(['W/"1"', "x", ""]),
                  "ifNoneExist": st.sampled_from(["identifier=a|b", "bogus=1", "&&"])})},
    optional={"resource": mutated_resources().map(lambda c: c[1]) | junk,
              "fullUrl": st.sampled_from(["urn:uuid:1", "urn:uuid:1", "Patient/x", ""])},
)  # fmt: skip


@given(
    kind=st.sampled_from(["transaction", "batch", "collection", "", None]),
    entries=st.lists(_entry, max_size=4) | junk,
)
@examples(80)
@example(kind="transaction", entries=[{"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "birthDate": PHI}}])  # fmt: skip
def test_hostile_bundles(
    live_api: LiveApi, log_trap: LogTrap, kind: str | None, entries: Any
) -> None:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": entries}
    if kind is not None:
        bundle["type"] = kind
    response = live_api.request("POST", "/fhir", json=bundle)
    check_answer(response)
    if response.status_code == 200:  # a batch answers per entry: each 4xx is an outcome
        for item in response.json().get("entry", []):
            outcome = item.get("response", {}).get("outcome")
            if outcome is not None:
                assert PHI not in json.dumps(outcome), outcome
    no_leaks(log_trap, (PHI,))


_header_value = st.sampled_from(
    ['W/"1"', '"1"', "W/", "*", "", "bogus", 'W/"99999999999999999999"', "identifier=|",
     "_id=p1", "name=" + PHI, "Mon, 32 Foo 2024", "application/fhir+json; fhirVersion=9",
     "text/html", "return=representation", "return=bogus"]
)  # fmt: skip


@given(
    headers=st.dictionaries(
        st.sampled_from(["If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since",
                         "Accept", "Prefer", "X-Provenance"]),
        _header_value, min_size=1, max_size=3),
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
)  # fmt: skip
@examples(80)
def test_hostile_conditional_headers(
    live_api: LiveApi, log_trap: LogTrap, headers: dict[str, str], method: str
) -> None:
    url = "/fhir/Patient" if method == "POST" else "/fhir/Patient/fzh"
    body = {**RICH["Patient"], "id": "fzh"} if method in ("PUT", "POST") else None
    if method == "POST":
        body = RICH["Patient"]
    response = live_api.request(method, url, json=body, headers=headers)
    check_answer(response)
    no_leaks(log_trap, (PHI,))
