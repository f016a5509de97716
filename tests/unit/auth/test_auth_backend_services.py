"""SMART Backend Services client assertions, signed for real with joserfc keys."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from auth.backend_services import (
    BackendClient,
    MemoryJtiStore,
    grant_scopes,
    unverified_client_id,
    verify_client_assertion,
)
from auth.errors import OAuthError
from auth.scopes import ScopeSet

TOKEN_URL = "https://medicore.example/auth/token"
CLIENT = "partner-hospital-1"
NOW = int(time.time())


@pytest.fixture(scope="module")
def keys() -> dict[str, RSAKey | ECKey]:
    return {
        "RS384": RSAKey.generate_key(2048, auto_kid=True),
        "ES384": ECKey.generate_key("P-384", auto_kid=True),
    }


@pytest.fixture(scope="module")
def client(keys: dict[str, RSAKey | ECKey]) -> BackendClient:
    jwks = KeySet(list(keys.values())).as_dict(private=False)
    return BackendClient(client_id=CLIENT, jwks=jwks, scopes=ScopeSet.parse("system/*.rs"))


def claims(**override: Any) -> dict[str, Any]:
    base = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": TOKEN_URL,
        "exp": NOW + 240,
        "jti": str(uuid.uuid4()),
    }
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    key: RSAKey | ECKey | OctKey, alg: str, body: dict[str, Any], kid: str | None = None
) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, body, key, algorithms=[alg])


async def verify(assertion: str, client: BackendClient, store: MemoryJtiStore | None = None):
    return await verify_client_assertion(
        assertion,
        client=client,
        token_url=TOKEN_URL,
        jti_store=store or MemoryJtiStore(clock=lambda: NOW),
        now=NOW,
    )


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_good_assertion_accepted_then_replay_refused(alg, keys, client):
    store = MemoryJtiStore(clock=lambda: NOW)
    assertion = sign(keys[alg], alg, claims())
    assert unverified_client_id(assertion) == CLIENT
    got = await verify(assertion, client, store)
    assert got["iss"] == CLIENT
    with pytest.raises(OAuthError) as info:
        await verify(assertion, client, store)
    assert (info.value.error, info.value.status) == ("invalid_client", 401)
    assert "jti" in info.value.description


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
@pytest.mark.parametrize(
    ("body", "why"),
    [
        (claims(exp=NOW - 10), "expired"),
        (claims(aud="https://evil.example/token"), "wrong aud"),
        (claims(exp=NOW + 301), "exp more than 5 minutes ahead"),
        (claims(exp=None), "no exp"),
        (claims(jti=None), "no jti"),
        (claims(iss="someone-else"), "iss is not the client"),
        (claims(sub="someone-else"), "sub is not the client"),
    ],
)
async def test_bad_claims_refused(alg, body, why, keys, client):
    with pytest.raises(OAuthError) as info:
        await verify(sign(keys[alg], alg, body), client)
    assert info.value.error == "invalid_client", why


async def test_unknown_kid_refused(client):
    stranger = ECKey.generate_key("P-384", auto_kid=True)
    with pytest.raises(OAuthError, match="kid"):
        await verify(sign(stranger, "ES384", claims()), client)


async def test_registered_kid_with_a_different_key_refused(keys, client):
    impostor = ECKey.generate_key("P-384")
    with pytest.raises(OAuthError) as info:
        await verify(sign(impostor, "ES384", claims(), kid=keys["ES384"].kid), client)
    assert info.value.error == "invalid_client"


async def test_hs256_refused(keys, client):
    # the classic confusion attack: HMAC keyed with something the attacker knows
    secret = OctKey.import_key(b"0123456789abcdef0123456789abcdef")
    token = sign(secret, "HS256", claims(), kid=keys["RS384"].kid)
    with pytest.raises(OAuthError, match="RS384 or ES384"):
        await verify(token, client)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_other_asymmetric_algorithms_refused(alg, client):
    key = (
        RSAKey.generate_key(2048, auto_kid=True)
        if alg == "RS256"
        else ECKey.generate_key("P-256", auto_kid=True)
    )
    with pytest.raises(OAuthError, match="RS384 or ES384"):
        await verify(sign(key, alg, claims()), client)


async def test_alg_none_refused(keys, client):
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    token = f"{b64({'alg': 'none', 'kid': keys['RS384'].kid})}.{b64(claims())}."
    with pytest.raises(OAuthError):
        await verify(token, client)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "é.é.é"])
async def test_garbage_refused(garbage, client):
    with pytest.raises(OAuthError) as info:
        await verify(garbage, client)
    assert info.value.error == "invalid_client"
    with pytest.raises(OAuthError):
        unverified_client_id(garbage)


async def test_wrong_assertion_type_refused(keys, client):
    with pytest.raises(OAuthError):
        await verify_client_assertion(
            sign(keys["ES384"], "ES384", claims()),
            client=client,
            token_url=TOKEN_URL,
            jti_store=MemoryJtiStore(clock=lambda: NOW),
            assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            now=NOW,
        )


@pytest.mark.parametrize(
    ("requested", "error"),
    [
        ("system/Patient.rs system/Observation.r", None),
        ("system/*.rs", None),
        ("system/Patient.c", "invalid_scope"),
        ("system/Patient.sr", "invalid_scope"),
        ("user/Patient.rs", "invalid_scope"),
        ("system/Patient.rs launch", "invalid_scope"),
        ("", "invalid_scope"),
    ],
)
def test_grant_scopes(requested, error, client):
    if error is None:
        assert str(grant_scopes(requested, client=client)) == str(ScopeSet.parse(requested))
    else:
        with pytest.raises(OAuthError) as info:
            grant_scopes(requested, client=client)
        assert (info.value.error, info.value.status) == (error, 400)
