"""SMART discovery documents, the CapabilityStatement security block and the JWKS."""

from __future__ import annotations

import pytest

from fhir_server.security.smart import OAUTH_URIS, security_extension
from tests.integration.auth_http.conftest import AuthApp

REQUIRED = (
    "authorization_endpoint",
    "token_endpoint",
    "capabilities",
    "grant_types_supported",
    "code_challenge_methods_supported",
    "token_endpoint_auth_methods_supported",
    "scopes_supported",
    "response_types_supported",
    "issuer",
    "jwks_uri",
)


@pytest.mark.parametrize(
    "path", ["/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"]
)
async def test_smart_configuration(auth_app: AuthApp, path: str) -> None:
    r = await auth_app.client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert not [name for name in REQUIRED if name not in doc]
    assert doc["token_endpoint"] == "http://test/auth/token"
    assert doc["authorization_endpoint"] == "http://test/auth/authorize"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "plain" not in doc["code_challenge_methods_supported"]
    assert {"client_credentials", "authorization_code"} <= set(doc["grant_types_supported"])
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    for capability in (
        "launch-standalone",
        "client-confidential-asymmetric",
        "permission-v2",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-offline",
    ):
        assert capability in doc["capabilities"]
    assert doc["issuer"] == auth_app.ctx.issuer
    jwks = await auth_app.client.get(doc["jwks_uri"].removeprefix("http://test"))
    assert jwks.status_code == 200


async def test_jwks_publishes_public_keys_only(auth_app: AuthApp) -> None:
    keys = (await auth_app.client.get("/auth/jwks.json")).json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256"}
    assert all("d" not in k and "p" not in k for k in keys)
    assert {k["kid"] for k in keys} == set(auth_app.ctx.keys.kids)


def test_security_extension_names_the_oauth_uris() -> None:
    block = security_extension("https://h.example/fhir")
    (ext,) = block["extension"]
    assert ext["url"] == OAUTH_URIS
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris["token"] == "https://h.example/auth/token"
    assert uris["authorize"] == "https://h.example/auth/authorize"
    assert block["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
