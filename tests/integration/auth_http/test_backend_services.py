"""SMART Backend Services through HTTP: real RS384/ES384 assertions, every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from fhir_server.security.authenticate import AuthenticationFailed, principal_from_token
from fhir_server.security.clients import client_record
from tests.clock import T0
from tests.integration.auth_http.conftest import AuthApp
from tests.integration.auth_http.helpers import (
    TOKEN_URL,
    assertion,
    client_credentials_form,
    client_keys,
    decode_unverified,
    public_jwks,
    verify_with_jwks,
)

CLIENT = "partner-hospital"


@pytest.fixture(scope="module")
def keys() -> dict[str, RSAKey | ECKey]:
    return client_keys()


async def register(a: AuthApp, keys: dict[str, RSAKey | ECKey], **kw: Any) -> None:
    scope = kw.pop("scope", "system/Patient.rs system/Observation.crs")
    if "jwks_url" not in kw:
        kw["jwks"] = public_jwks(keys)
    await a.ctx.repo.put_client(client_record(CLIENT, scope=scope, **kw))


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_signed_assertion_gets_a_short_system_token(
    any_auth_app: AuthApp, keys: dict[str, RSAKey | ECKey], alg: str
) -> None:
    a = any_auth_app
    await register(a, keys)
    signed = assertion(keys[alg], alg, CLIENT)
    r = await a.client.post("/auth/token", data=client_credentials_form(signed))
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "system/Patient.rs"
    assert 0 < body["expires_in"] <= 300
    jwks = (await a.client.get("/auth/jwks.json")).json()
    claims = verify_with_jwks(body["access_token"], jwks)
    assert claims["sub"] == CLIENT and claims["client_id"] == CLIENT
    assert claims["role"] == "system"
    assert claims["exp"] - claims["iat"] <= 300
    principal = await principal_from_token(a.ctx, body["access_token"])
    assert principal.registered_scopes is not None
    assert principal.registered_scopes.covers(principal.scopes.resource_scopes[0])
    # the same assertion again is a replay, refused
    again = await a.client.post("/auth/token", data=client_credentials_form(signed))
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert "jti" in again.json()["error_description"]
    a.clock.advance(235)  # however long the client waits, inside exp it is still a replay
    late = await a.client.post("/auth/token", data=client_credentials_form(signed))
    assert (late.status_code, late.json()["error"]) == (401, "invalid_client")
    assert "jti" in late.json()["error_description"]


@pytest.mark.parametrize(
    ("case", "alg", "override"),
    [
        ("expired", "RS384", {"exp": T0 - 60}),
        ("exp too far", "ES384", {"exp": T0 + 900}),
        ("wrong aud", "RS384", {"aud": "http://test/fhir"}),
        ("sub differs", "ES384", {"sub": "someone-else"}),
        ("no jti", "RS384", {"jti": None}),
    ],
)
async def test_bad_assertions_are_invalid_client(
    auth_app: AuthApp,
    keys: dict[str, RSAKey | ECKey],
    case: str,
    alg: str,
    override: dict[str, Any],
) -> None:
    await register(auth_app, keys)
    signed = assertion(keys[alg], alg, CLIENT, **override)
    r = await auth_app.client.post("/auth/token", data=client_credentials_form(signed))
    assert r.status_code == 401, case
    assert r.json()["error"] == "invalid_client"


async def test_unknown_kid_hs256_and_foreign_key_are_refused(
    auth_app: AuthApp, keys: dict[str, RSAKey | ECKey]
) -> None:
    await register(auth_app, keys)
    unknown_kid = assertion(keys["RS384"], "RS384", CLIENT, kid="not-registered")
    # HS256 with the public RSA modulus as secret: the classic alg-confusion attack
    modulus = str(keys["RS384"].as_dict(private=False)["n"])
    secret = OctKey.import_key(modulus.encode())
    hs256 = assertion(secret, "HS256", CLIENT, kid="rs-1")
    impostor = assertion(RSAKey.generate_key(2048), "RS384", CLIENT, kid="rs-1")
    for signed in (unknown_kid, hs256, impostor):
        r = await auth_app.client.post("/auth/token", data=client_credentials_form(signed))
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_client"


async def test_unknown_client_and_unregistered_scope(
    auth_app: AuthApp, keys: dict[str, RSAKey | ECKey]
) -> None:
    await register(auth_app, keys)
    stranger = assertion(keys["ES384"], "ES384", "nobody")
    r = await auth_app.client.post("/auth/token", data=client_credentials_form(stranger))
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    for scope in ("system/MedicationRequest.rs", "system/Patient.sr", "user/Patient.rs", ""):
        signed = assertion(keys["ES384"], "ES384", CLIENT)
        form = client_credentials_form(signed, scope=scope)
        r = await auth_app.client.post("/auth/token", data=form)
        assert r.status_code == 400, scope
        assert r.json()["error"] == "invalid_scope"


async def test_grant_type_and_request_format_errors(auth_app: AuthApp) -> None:
    r = await auth_app.client.post("/auth/token", data={"grant_type": "password"})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = await auth_app.client.post("/auth/token", data={})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = await auth_app.client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = await auth_app.client.post(
        "/auth/token",
        content="grant_type=client_credentials&grant_type=refresh_token",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


async def test_jwks_url_client_is_fetched_and_cached(
    auth_app: AuthApp, keys: dict[str, RSAKey | ECKey]
) -> None:
    url = "https://partner.example/jwks.json"
    fetched: list[str] = []

    async def fetch(u: str) -> dict[str, Any]:
        fetched.append(u)
        return public_jwks(keys)

    auth_app.ctx.jwks_cache.fetch = fetch
    await register(auth_app, keys, jwks_url=url)
    for alg in ("RS384", "ES384"):
        signed = assertion(keys[alg], alg, CLIENT)
        r = await auth_app.client.post("/auth/token", data=client_credentials_form(signed))
        assert r.status_code == 200, r.text
    assert fetched == [url]


async def test_disabled_client_tokens_stop_working(
    auth_app: AuthApp, keys: dict[str, RSAKey | ECKey]
) -> None:
    await register(auth_app, keys)
    signed = assertion(keys["RS384"], "RS384", CLIENT)
    r = await auth_app.client.post("/auth/token", data=client_credentials_form(signed))
    token = r.json()["access_token"]
    assert decode_unverified(token)["aud"] == auth_app.ctx.fhir_base
    doc = await auth_app.ctx.repo.get_client(CLIENT)
    assert doc is not None
    await auth_app.ctx.repo.put_client({**doc, "disabled": True}, new=False)
    with pytest.raises(AuthenticationFailed) as failed:
        await principal_from_token(auth_app.ctx, token)
    assert 'error="invalid_token"' in failed.value.www_authenticate
    assert TOKEN_URL.endswith("/auth/token")
