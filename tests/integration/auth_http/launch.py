"""Driving the standalone-launch login page the way a browser and a SMART app would."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from auth.pkce import new_verifier, s256_challenge
from auth.roles import RoleTable
from fhir_server.security.clients import client_record
from fhir_server.security.users import user_record
from tests.integration.auth_http.conftest import AuthApp
from tests.integration.auth_http.helpers import (
    APP_ID,
    PASSWORD,
    REDIRECT,
    REQUEST_BASE,
    hidden_fields,
    query_of,
)


@cache
def staff(name: str, role: str, fhir_user: str | None = None) -> dict[str, Any]:
    """A user record, hashed once per session (Argon2id is deliberately slow)."""
    return user_record(
        name, role=role, password=PASSWORD, roles=RoleTable.load(), fhir_user=fhir_user
    )


async def setup_app_and_users(a: AuthApp) -> str:
    """Register the public app and a doctor and a nurse; return a stored Patient id."""
    await a.ctx.repo.put_client(client_record(APP_ID, redirect_uris=[REDIRECT]))
    await a.ctx.repo.put_user(staff("dr.kim", "doctor", "Practitioner/7"))
    await a.ctx.repo.put_user(staff("rn.lee", "nurse"))
    outcome = await a.app.state.service.create(
        "Patient", {"resourceType": "Patient", "active": True}
    )
    assert outcome.stored is not None
    return str(outcome.stored.id)


@dataclass
class Launch:
    verifier: str
    params: dict[str, str]


def launch_params(scope: str, **override: str) -> Launch:
    verifier = new_verifier()
    params = {
        "response_type": "code",
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st-123",
        "aud": f"{REQUEST_BASE}/fhir",
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
        "nonce": "n-456",
        **override,
    }
    return Launch(verifier=verifier, params=params)


async def sign_in(
    a: AuthApp, launch: Launch, *, user: str = "dr.kim", password: str = PASSWORD, **extra: str
) -> Any:
    """GET the form, post it back with credentials; return the POST response."""
    page = await a.client.get("/auth/authorize", params=launch.params)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    assert fields == launch.params  # the form carries the request through unchanged
    return await a.client.post(
        "/auth/authorize", data={**fields, "username": user, "password": password, **extra}
    )


async def code_for(a: AuthApp, launch: Launch, **extra: str) -> str:
    r = await sign_in(a, launch, **extra)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(REDIRECT + "?")
    query = query_of(r.headers["location"])
    assert query["state"] == "st-123"
    return query["code"]


def code_form(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": APP_ID,
    }
