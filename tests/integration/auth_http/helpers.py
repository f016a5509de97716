"""Keys, signed client assertions and a PKCE pair for the token-service tests."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from fhir_server.security.context import SecurityContext
from tests.clock import T0

REQUEST_BASE = "http://test"
TOKEN_URL = f"{REQUEST_BASE}/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
APP_ID = "chart-app"
REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse 42"


def client_keys() -> dict[str, RSAKey | ECKey]:
    return {
        "RS384": RSAKey.generate_key(2048, parameters={"kid": "rs-1"}),
        "ES384": ECKey.generate_key("P-384", parameters={"kid": "ec-1"}),
    }


def public_jwks(keys: dict[str, RSAKey | ECKey]) -> dict[str, Any]:
    return dict(KeySet(list(keys.values())).as_dict(private=False))


def assertion(
    key: RSAKey | ECKey | OctKey,
    alg: str,
    client_id: str,
    *,
    kid: str | None = None,
    **override: Any,
) -> str:
    """A client assertion as SMART Backend Services clients sign it."""
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": T0 + 240,  # the test app's clock starts at T0
        "jti": str(uuid.uuid4()),
        **override,
    }
    header = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else key.kid}
    return jwt.encode(
        header, {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg]
    )


def client_credentials_form(token: str, scope: str = "system/Patient.rs") -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": token,
        "scope": scope,
    }


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the login form (what a browser would post back)."""
    import html as html_lib

    pattern = r'<input type=hidden name="([^"]*)" value="([^"]*)">'
    return {html_lib.unescape(k): html_lib.unescape(v) for k, v in re.findall(pattern, html)}


def decode_unverified(token: str) -> dict[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def verify_with_jwks(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check a token's signature against a published JWKS (as a resource server would)."""
    return dict(jwt.decode(token, KeySet.import_key_set(jwks)).claims)  # type: ignore[arg-type]


def security(app: Any) -> SecurityContext:
    ctx: SecurityContext = app.state.security
    return ctx
