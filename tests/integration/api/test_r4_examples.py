"""Every official R4 example of the types MediCore writes is accepted by PUT (at its own
id) and by POST, and reads back with the same content (issue #16).

Content is compared as parsed JSON with each number kept as written, so key order and
whitespace may change (FHIR allows it) but a decimal's digits may not: FHIR gives their
precision meaning. Only ``meta.versionId`` and ``meta.lastUpdated`` are the server's.
An example refused for a real reason is named with the reason in ``EXPECTED_REFUSALS``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "r4-examples"
FILES = sorted(p.name for p in EXAMPLES.glob("*.json"))
# example file -> why the server refuses it (none today: every example is accepted)
EXPECTED_REFUSALS: dict[str, str] = {}
FHIR_JSON = {"Content-Type": "application/fhir+json"}
_SERVER_META = ("versionId", "lastUpdated")

in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One app on one SQLite file for every example."""
    tmp = tmp_path_factory.mktemp("r4-examples")
    settings = Settings(
        store=f"sqlite:///{tmp / 'examples.db'}", data_dir=str(tmp / "data"), auth_required=False
    )
    app = create_app(settings, hl7=Hl7Settings(mllp_port=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def exact(text: bytes | str) -> Any:
    """Parsed JSON with every number as the text it was written with."""
    return json.loads(text, parse_float=str, parse_int=str)


def content(resource: dict[str, Any], *, with_id: bool = True) -> dict[str, Any]:
    """The resource less what the server stamps (and less its id when it assigns one)."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in _SERVER_META}
    kept = {k: v for k, v in resource.items() if k != "meta" and (with_id or k != "id")}
    return {**kept, "meta": meta} if meta else kept


def test_the_shipped_examples_are_the_official_ones() -> None:
    counts: dict[str, int] = {}
    for name in FILES:
        kind = name.split("-", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    expected = {"Patient": 8, "Encounter": 8, "MedicationRequest": 8, "Observation": 10}
    assert counts == {**expected, "Provenance": 5}
    assert set(EXPECTED_REFUSALS) <= set(FILES)


@in_module_loop
@pytest.mark.parametrize("name", FILES)
async def test_put_at_its_own_id_reads_back_the_same(client: httpx.AsyncClient, name: str) -> None:
    raw = (EXAMPLES / name).read_bytes()
    example = exact(raw)
    url = f"/fhir/{example['resourceType']}/{example['id']}"
    written = await client.put(url, content=raw, headers=FHIR_JSON)
    if name in EXPECTED_REFUSALS:
        assert written.status_code in (400, 422), written.text
        return
    assert written.status_code in (200, 201), (name, written.text)
    back = await client.get(url)
    assert back.status_code == 200
    assert content(exact(back.content)) == content(example)
    assert content(exact(written.content)) == content(example)


@in_module_loop
@pytest.mark.parametrize("name", FILES)
async def test_post_reads_back_the_same(client: httpx.AsyncClient, name: str) -> None:
    raw = (EXAMPLES / name).read_bytes()
    example = exact(raw)
    created = await client.post(f"/fhir/{example['resourceType']}", content=raw, headers=FHIR_JSON)
    if name in EXPECTED_REFUSALS:
        assert created.status_code in (400, 422), created.text
        return
    assert created.status_code == 201, (name, created.text)
    new_id = created.json()["id"]
    assert new_id != example["id"]  # POST ignores the body's id
    back = await client.get(f"/fhir/{example['resourceType']}/{new_id}")
    assert content(exact(back.content), with_id=False) == content(example, with_id=False)


# A decimal's digits as written, in every place a resource leaves the server.
PRECISE = {
    "resourceType": "Observation",
    "id": "precise",
    "status": "preliminary",
    "code": {"text": "precise body temperature"},
    "valueQuantity": {"value": "36.50", "unit": "Cel"},
    "referenceRange": [
        {"low": {"value": "3.600e1"}, "high": {"value": "0.37000E2"}},
        {"low": {"value": "1.0"}, "high": {"value": "12345678901234567890.123"}},
    ],
}


def _precise_bytes() -> bytes:
    text = json.dumps(PRECISE)
    for number in ("36.50", "3.600e1", "0.37000E2", "1.0", "12345678901234567890.123"):
        text = text.replace(f'"{number}"', number)  # numbers, not strings
    return text.encode()


@in_module_loop
async def test_decimal_precision_is_preserved_everywhere(client: httpx.AsyncClient) -> None:
    written = await client.put(
        "/fhir/Observation/precise", content=_precise_bytes(), headers=FHIR_JSON
    )
    assert written.status_code in (200, 201), written.text
    assert content(exact(written.content)) == PRECISE
    assert content(exact((await client.get("/fhir/Observation/precise")).content)) == PRECISE
    vread = await client.get("/fhir/Observation/precise/_history/1")
    assert content(exact(vread.content)) == PRECISE
    found = exact((await client.get("/fhir/Observation?_id=precise")).content)
    assert content(found["entry"][0]["resource"]) == PRECISE
    history = exact((await client.get("/fhir/Observation/precise/_history")).content)
    assert content(history["entry"][0]["resource"]) == PRECISE
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Observation/precise"}}],
    }
    answered = exact((await client.post("/fhir", json=batch)).content)
    assert content(answered["entry"][0]["resource"]) == PRECISE
    # a patch rewrites the resource: the digits it did not touch stay as written
    patch = [{"op": "replace", "path": "/status", "value": "final"}]
    patched = await client.patch(
        "/fhir/Observation/precise",
        content=json.dumps(patch),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert content(exact(patched.content)) == {**PRECISE, "status": "final"}
    # and search still compares the value, not the text
    matched = (await client.get("/fhir/Observation?value-quantity=36.5&code:text=precise")).json()
    assert [e["resource"]["id"] for e in matched.get("entry", [])] == ["precise"]
