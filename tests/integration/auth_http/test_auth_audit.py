"""Calls and refusals of /auth/revoke, /auth/introspect and unknown /auth routes leave a
durable AuditEvent: outcome, who (as far as known), from where, what."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from fhir_server.security.clients import OPERATOR_CLIENT_ID
from tests.integration.auth_http.conftest import AuthApp
from tests.integration.auth_http.helpers import APP_ID
from tests.integration.auth_http.test_revoke_introspect import staff_token, user_tokens

SUBTYPES = "https://fhir.medicore.example/CodeSystem/audit-subtype"


async def chain(a: AuthApp) -> list[dict[str, Any]]:
    """The durable record: the store's audit chain, read back after the answer."""
    return [orjson.loads(r.event_json) async for r in a.app.state.service.store.iter_audit()]


async def last_event(a: AuthApp) -> dict[str, Any]:
    return (await chain(a))[-1]


def subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def who(event: dict[str, Any]) -> dict[str, str]:
    ids = {}
    for agent in event["agent"]:
        identifier = (agent.get("who") or {}).get("identifier") or {}
        if identifier.get("system"):
            ids[identifier["system"].rsplit("/", 1)[-1]] = identifier["value"]
    return ids


def address(event: dict[str, Any]) -> str | None:
    return next((a["network"]["address"] for a in event["agent"] if "network" in a), None)


def queries(event: dict[str, Any]) -> list[str]:
    return [base64.b64decode(e["query"]).decode() for e in event.get("entity", []) if "query" in e]


async def test_revoke_calls_and_refusals_are_audited(auth_app: AuthApp) -> None:
    a = auth_app
    tokens = await user_tokens(a)
    cases: list[tuple[dict[str, str], int, str, dict[str, str]]] = [
        # form, status, outcomeDesc, who
        ({"token": "x", "client_id": "nobody"}, 401,
         "denied: HTTP 401 Unauthorized: invalid_client", {"client": "nobody"}),
        ({"token": tokens["access_token"], "client_id": OPERATOR_CLIENT_ID}, 400,
         "denied: HTTP 400 Bad Request: unauthorized_client", {"client": OPERATOR_CLIENT_ID}),
        ({"client_id": APP_ID}, 400, "HTTP 400 Bad Request: invalid_request", {"client": APP_ID}),
        ({"token": "unknown", "client_id": APP_ID}, 200, "HTTP 200 OK: nothing to revoke",
         {"client": APP_ID}),
        ({"token": tokens["access_token"], "client_id": APP_ID}, 200,
         "HTTP 200 OK: access token revoked", {"client": APP_ID}),
    ]  # fmt: skip
    for form, status, desc, named in cases:
        before = len(await chain(a))
        r = await a.client.post("/auth/revoke", data=form)
        assert r.status_code == status, form
        events = await chain(a)
        assert len(events) == before + 1, form
        event = events[-1]
        assert subtype(event) == "token-revoke"
        assert event["type"]["code"] == "110114"
        assert event["outcomeDesc"] == desc
        assert event["outcome"] == ("0" if status == 200 else "4")
        assert who(event) == named
        assert address(event) == "127.0.0.1"
        assert tokens["access_token"] not in orjson.dumps(event).decode()


async def test_an_overlong_claimed_client_id_is_cut(auth_app: AuthApp) -> None:
    r = await auth_app.client.post("/auth/revoke", data={"token": "x", "client_id": "c" * 5000})
    assert r.status_code == 401
    assert who(await last_event(auth_app)) == {"client": "c" * 128}


async def test_introspect_calls_and_refusals_are_audited(any_auth_app: AuthApp) -> None:
    a = any_auth_app
    tokens = await user_tokens(a)
    form = {"token": tokens["access_token"]}
    nurse, itadmin = staff_token(a, "nurse"), staff_token(a, "itadmin")
    cases: list[tuple[dict[str, str], dict[str, str], int, str, dict[str, str]]] = [
        # form, headers, status, outcomeDesc, who
        ({**form, "client_id": APP_ID}, {}, 401,
         "denied: HTTP 401 Unauthorized: invalid_client", {"client": APP_ID}),
        (form, {"Authorization": "Bearer not.a.token"}, 401,
         "denied: HTTP 401 Unauthorized: invalid_token", {}),
        (form, {"Authorization": f"Bearer {nurse}"}, 403,
         "denied: HTTP 403 Forbidden: insufficient_scope",
         {"user": "nurse-user", "client": "medicore-cli"}),
        ({"other": "1"}, {"Authorization": f"Bearer {itadmin}"}, 400,
         "HTTP 400 Bad Request: invalid_request",
         {"user": "itadmin-user", "client": "medicore-cli"}),
        (form, {"Authorization": f"Bearer {itadmin}"}, 200, "HTTP 200 OK: token active",
         {"user": "itadmin-user", "client": "medicore-cli"}),
    ]  # fmt: skip
    for body, headers, status, desc, named in cases:
        r = await a.client.post("/auth/introspect", data=body, headers=headers)
        assert r.status_code == status, (body, headers)
        event = await last_event(a)
        assert subtype(event) == "token-introspect"
        assert event["outcomeDesc"] == desc
        assert who(event) == named
        assert address(event) == "127.0.0.1"
    nurse_event = [e for e in await chain(a) if "403" in e["outcomeDesc"]][-1]
    requestor = next(agent for agent in nurse_event["agent"] if agent["requestor"])
    assert requestor["role"][0]["coding"][0]["code"] == "nurse"


async def test_a_non_form_body_is_audited_too(auth_app: AuthApp) -> None:
    for path, interaction in (
        ("/auth/revoke", "token-revoke"),
        ("/auth/introspect", "token-introspect"),
    ):
        r = await auth_app.client.post(path, json={"token": "x"})
        assert r.status_code == 400
        event = await last_event(auth_app)
        assert (subtype(event), event["outcome"]) == (interaction, "4")  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/auth/nonexistent", 404),
        ("POST", "/auth/nonexistent", 404),
        ("GET", "/auth/a/b/c", 404),
        ("GET", "/auth", 404),
        ("GET", "/auth/", 404),
        ("GET", "/auth/revoke", 405),
        ("GET", "/auth/token", 405),
        ("DELETE", "/auth/jwks.json", 405),
    ],
)
async def test_unknown_auth_routes_answer_as_before_and_are_audited(
    auth_app: AuthApp, method: str, path: str, status: int
) -> None:
    before = len(await chain(auth_app))
    r = await auth_app.client.request(method, f"{path}?code=secret-code&access_token=secret")
    assert r.status_code == status
    issue = r.json()["issue"][0]
    message = "no such endpoint" if status == 404 else "this interaction is not supported here"
    assert (issue["code"], issue["diagnostics"]) == (
        "not-found" if status == 404 else "not-supported",
        message,
    )
    events = await chain(auth_app)
    assert len(events) == before + 1
    event = events[-1]
    assert event["outcome"] == "4"
    assert event["outcomeDesc"].startswith(f"HTTP {status} ")
    assert address(event) == "127.0.0.1"
    assert queries(event) == [f"{method} {path}"]  # what was asked, never its query string
    assert "secret" not in orjson.dumps(event).decode()


async def test_routes_outside_auth_stay_as_they_were(auth_app: AuthApp) -> None:
    """The SMART discovery document and the JWKS are public: not audited."""
    before = len(await chain(auth_app))
    assert (await auth_app.client.get("/auth/jwks.json")).status_code == 200
    assert (await auth_app.client.get("/.well-known/smart-configuration")).status_code == 200
    assert (await auth_app.client.get("/authx")).status_code == 404
    assert len(await chain(auth_app)) == before
