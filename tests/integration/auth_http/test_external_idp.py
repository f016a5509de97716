"""Tokens from the hospital identity provider, verified by issuer + JWKS, through the app."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from auth.tokens import issue_access_token
from fhir_server.security.authenticate import (
    AuthenticationFailed,
    authenticate,
    principal_from_token,
)
from tests.clock import T0
from tests.integration.auth_http.conftest import AuthApp
from tests.jose_calls import count_jose_calls

IDP = "https://idp.hospital.example/realms/staff"
JWKS_URL = f"{IDP}/protocol/openid-connect/certs"


@pytest.fixture(scope="module")
def idp_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "idp-1"})


def idp_token(key: RSAKey, **override: Any) -> str:
    now = T0  # the test app's clock
    claims: dict[str, Any] = {
        "iss": IDP,
        "sub": "f:1234:dr.park",
        "aud": "medicore",
        "azp": "emr-frontend",
        "iat": now,
        "exp": now + 300,
        "jti": "idp-jti-1",
        "scope": "openid user/Observation.rs",
        "realm_access": {"roles": ["offline", "physician"]},
        **override,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])


@pytest.fixture
def idp_app(auth_app: AuthApp, idp_key: RSAKey) -> tuple[AuthApp, list[str]]:
    """The app trusting IDP; its JWKS served by a fake fetch that records each call."""
    sec = auth_app.ctx.settings
    sec.idp_issuer, sec.idp_jwks_url, sec.idp_audience = IDP, JWKS_URL, "medicore"
    sec.idp_role_claim = "realm_access.roles"
    sec.idp_role_map = {"physician": "doctor", "integration": "system"}
    fetched: list[str] = []

    async def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return dict(KeySet([idp_key]).as_dict(private=False))

    auth_app.ctx.jwks_cache.fetch = fetch

    @auth_app.app.get("/test-whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        try:
            p = await authenticate(request)
        except AuthenticationFailed as exc:
            return {"status": 401, "www": exc.www_authenticate}
        return {
            "status": 200,
            "sub": p.subject,
            "role": p.role,
            "client": p.client_id,
            "scope": str(p.scopes),
        }

    return auth_app, fetched


async def test_idp_token_is_accepted_with_mapped_role(
    idp_app: tuple[AuthApp, list[str]], idp_key: RSAKey
) -> None:
    a, fetched = idp_app
    headers = {"Authorization": f"Bearer {idp_token(idp_key)}"}
    for _ in range(2):
        r = (await a.client.get("/test-whoami", headers=headers)).json()
        assert r == {
            "status": 200,
            "sub": "f:1234:dr.park",
            "role": "doctor",
            "client": "emr-frontend",
            "scope": "openid user/Observation.rs",
        }
    assert fetched == [JWKS_URL]  # cached


@pytest.mark.parametrize(
    ("case", "override"),
    [
        ("expired", {"exp": T0 - 3600, "iat": T0 - 7200}),
        ("wrong audience", {"aud": "someone-else"}),
        ("other issuer", {"iss": "https://evil.example"}),
        ("bad scope", {"scope": "user/Observation.sr"}),
    ],
)
async def test_bad_idp_tokens_are_401(
    idp_app: tuple[AuthApp, list[str]], idp_key: RSAKey, case: str, override: dict[str, Any]
) -> None:
    a, _ = idp_app
    headers = {"Authorization": f"Bearer {idp_token(idp_key, **override)}"}
    r = (await a.client.get("/test-whoami", headers=headers)).json()
    assert r["status"] == 401, case
    assert r["www"].startswith('Bearer realm="medicore", error="invalid_token"')


async def test_idp_cannot_mint_system_principals_and_foreign_keys_fail(
    idp_app: tuple[AuthApp, list[str]], idp_key: RSAKey
) -> None:
    a, fetched = idp_app
    system = idp_token(idp_key, realm_access={"roles": ["integration"]})
    r = (await a.client.get("/test-whoami", headers={"Authorization": f"Bearer {system}"})).json()
    assert (r["status"], r["role"]) == (200, "")
    forged = idp_token(RSAKey.generate_key(2048, parameters={"kid": "idp-2"}))
    r = (await a.client.get("/test-whoami", headers={"Authorization": f"Bearer {forged}"})).json()
    assert r["status"] == 401
    assert len(fetched) == 1  # an unknown kid right after a fetch does not refetch


async def test_missing_and_malformed_headers(idp_app: tuple[AuthApp, list[str]]) -> None:
    a, _ = idp_app
    r = (await a.client.get("/test-whoami")).json()
    assert r == {"status": 401, "www": 'Bearer realm="medicore"'}
    r = (await a.client.get("/test-whoami", headers={"Authorization": "Basic abc"})).json()
    assert 'error="invalid_token"' in r["www"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    return count_jose_calls(monkeypatch)


async def test_a_cache_miss_parses_the_token_once(
    idp_app: tuple[AuthApp, list[str]], idp_key: RSAKey, counted: dict[str, int]
) -> None:
    a, _ = idp_app
    ctx = a.ctx
    own = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject="u1",
        client_id="ehr",
        scope="user/Observation.rs",
        role="nurse",
        now=ctx.now(),
    ).token
    ctx.keys.public_keyset()  # built once per key reload, not per request
    for token in (own, idp_token(idp_key)):
        before = counted["parse"]
        principal = await principal_from_token(ctx, token)
        assert principal.subject in ("u1", "f:1234:dr.park")
        assert counted["parse"] - before == 1, "one split/decode per cache miss"


async def test_idp_jwks_is_imported_once_per_fetched_document(
    idp_app: tuple[AuthApp, list[str]], idp_key: RSAKey, counted: dict[str, int]
) -> None:
    a, fetched = idp_app
    ctx = a.ctx
    ctx.jwks_cache.min_refetch = 0  # an unknown kid refetches at once (rotation below)
    for i in range(3):  # distinct tokens: each one misses the principal cache
        r = await a.client.get(
            "/test-whoami", headers={"Authorization": f"Bearer {idp_token(idp_key, jti=f'j{i}')}"}
        )
        assert r.json()["status"] == 200
    assert (len(fetched), counted["import"]) == (1, 1)

    rotated = RSAKey.generate_key(2048, parameters={"kid": "idp-2"})

    async def fetch_rotated(url: str) -> dict[str, Any]:
        fetched.append(url)
        return dict(KeySet([rotated]).as_dict(private=False))  # idp-1 is gone

    ctx.jwks_cache.fetch = fetch_rotated
    new = {"Authorization": f"Bearer {idp_token(rotated, jti='new')}"}
    assert (await a.client.get("/test-whoami", headers=new)).json()["status"] == 200
    assert (len(fetched), counted["import"]) == (2, 2)  # new JWKS fetched and imported
    old = {"Authorization": f"Bearer {idp_token(idp_key, jti='old')}"}
    assert (await a.client.get("/test-whoami", headers=old)).json()["status"] == 401
    # The old kid refetched an unchanged JWKS: nothing to import again.
    assert (len(fetched), counted["import"]) == (3, 2)
