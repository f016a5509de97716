"""Malformed input at the auth surface answers 4xx, and the configured role table rules."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from auth.tokens import issue_access_token
from tests.integration.auth_http.conftest import AuthApp, _auth_app
from tests.integration.auth_http.helpers import ASSERTION_TYPE
from tests.integration.auth_http.launch import launch_params, setup_app_and_users

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


#: A JWS-shaped string whose payload is JSON nested deeper than the parser's recursion limit.
DEEP = _b64(b'{"alg":"ES256"}') + "." + _b64(b"[" * 5000) + ".c2ln"


def _mint(a: AuthApp, *, role: str, scope: str) -> str:
    ctx = a.ctx
    return issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject="u1",
        client_id="ehr",
        scope=scope,
        role=role,
        now=ctx.now(),
    ).token


async def test_deeply_nested_token_payload_is_401_not_500(auth_app: AuthApp) -> None:
    c = auth_app.client
    r = await c.get("/fhir/Patient", headers={"Authorization": f"Bearer {DEEP}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = await c.post(
        "/auth/introspect", data={"token": "x"}, headers={"Authorization": f"Bearer {DEEP}"}
    )
    assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": DEEP,
        "scope": "system/Patient.rs",
    }
    r = await c.post("/auth/token", data=form)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")


async def test_oversized_forms_get_oauth_errors(auth_app: AuthApp) -> None:
    c = auth_app.client
    many = "&".join(f"k{i}=v" for i in range(500))
    huge = "grant_type=client_credentials&client_assertion=" + "a" * 200_000
    for body in (many, huge):
        r = await c.post("/auth/token", content=body.encode(), headers=FORM)
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_request"


async def test_introspect_without_credentials_sends_a_challenge(auth_app: AuthApp) -> None:
    r = await auth_app.client.post("/auth/introspect", data={"token": "x"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="medicore"'


@pytest.fixture
async def strict_roles_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys_dir: Path
) -> AsyncIterator[AuthApp]:
    """The app with a hospital role file in which doctors may read Observations only."""
    roles = tmp_path / "roles.json"
    roles.write_text(
        json.dumps(
            {
                "roles": {
                    "doctor": {"resources": {"Observation": "rs"}},
                    "ward-clerk": {"resources": {"Patient": "rs"}},
                }
            }
        )
    )
    async for a in _auth_app("sqlite", tmp_path, monkeypatch, keys_dir, roles_file=roles):
        yield a


async def test_configured_role_table_is_enforced_not_the_shipped_one(
    strict_roles_app: AuthApp,
) -> None:
    a = strict_roles_app
    doctor = _mint(a, role="doctor", scope="user/Patient.rs user/Observation.rs")
    headers = {"Authorization": f"Bearer {doctor}"}
    assert (await a.client.get("/fhir/Patient", headers=headers)).status_code == 403
    assert (await a.client.get("/fhir/Observation", headers=headers)).status_code == 200
    clerk = _mint(a, role="ward-clerk", scope="user/Patient.rs")
    r = await a.client.get("/fhir/Patient", headers={"Authorization": f"Bearer {clerk}"})
    assert r.status_code == 200  # a role only the hospital's file knows


async def test_authorize_refuses_a_parameter_given_twice(auth_app: AuthApp) -> None:
    await setup_app_and_users(auth_app)
    launch = launch_params("openid user/Patient.rs")
    ok = await auth_app.client.get("/auth/authorize", params=launch.params)
    assert ok.status_code == 200
    twice = httpx.QueryParams([*launch.params.items(), ("scope", "user/*.cruds")])
    r = await auth_app.client.get("/auth/authorize", params=twice)
    assert r.status_code == 400
    assert "scope given more than once" in r.text
