"""Access and id tokens as signed JWTs, and verification of the hospital IdP's tokens.

Access tokens carry: iss, sub, aud (the FHIR base URL), exp (<= 1 h; <= 5 min for
backend services), iat, jti, scope, client_id and, when known, role, patient, fhirUser.
Verification allows only ES256/RS256 with a kid from our own JWKS, and checks exp, nbf,
iat, iss and aud. Revocation is the caller's: it looks up the returned `jti`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, InvalidPayloadError, JoseError
from joserfc.jwk import KeySet

from auth.errors import InvalidToken
from auth.keys import SIGNING_ALGS, KeyRing

MAX_ACCESS_LIFETIME = 3600
MAX_BACKEND_LIFETIME = 300
ID_TOKEN_ALG = "RS256"  # OpenID Connect's mandatory algorithm; SMART clients expect it
_RESERVED = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id", "role", "patient"}
)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed token and what the token endpoint / revocation list needs."""

    token: str
    jti: str
    expires_in: int
    claims: Mapping[str, Any]


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


def issue_access_token(
    ring: KeyRing,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    scope: str,
    role: str | None = None,
    patient: str | None = None,
    fhir_user: str | None = None,
    backend_service: bool = False,
    lifetime: int | None = None,
    extra: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> IssuedToken:
    """Sign an access token; lifetime defaults to and is capped by the SMART limits."""
    cap = MAX_BACKEND_LIFETIME if backend_service else MAX_ACCESS_LIFETIME
    ttl = cap if lifetime is None else lifetime
    if not 0 < ttl <= cap:
        raise ValueError(f"access token lifetime must be 1..{cap} seconds")
    if extra and _RESERVED & set(extra):
        raise ValueError("extra claims may not override registered claims")
    iat = _now(now)
    claims: dict[str, Any] = {
        **(extra or {}),
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": iat,
        "exp": iat + ttl,
        "jti": secrets.token_hex(24),  # hex: never starts with "-", an option to a CLI
        "scope": scope,
        "client_id": client_id,
    }
    for name, value in (("role", role), ("patient", patient), ("fhirUser", fhir_user)):
        if value is not None:
            claims[name] = value
    token = ring.sign(claims, typ="at+jwt")
    return IssuedToken(token=token, jti=claims["jti"], expires_in=ttl, claims=claims)


def issue_id_token(
    ring: KeyRing,
    *,
    issuer: str,
    client_id: str,
    subject: str,
    fhir_user: str | None = None,
    nonce: str | None = None,
    lifetime: int = MAX_ACCESS_LIFETIME,
    now: int | None = None,
) -> str:
    """Sign an OpenID Connect id_token (RS256) for `openid fhirUser` launches."""
    iat = _now(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "iat": iat,
        "exp": iat + lifetime,
    }
    if fhir_user is not None:
        claims["fhirUser"] = fhir_user
    if nonce is not None:
        claims["nonce"] = nonce
    return ring.sign(claims, alg=ID_TOKEN_ALG, typ="JWT")


class UnverifiedToken:
    """A compact JWS split and base64-decoded once, then handed to routing and verification.

    Nothing in it is trusted until `_verify` checked the signature over these same bytes.
    """

    __slots__ = ("_claims", "compact", "header")

    def __init__(self, token: str) -> None:
        try:
            self.compact = jws.extract_compact(token.encode("ascii"))
        except (JoseError, ValueError, UnicodeError):
            raise InvalidToken("token is not a compact JWS") from None
        self.header: dict[str, Any] = dict(self.compact.protected)
        self._claims: dict[str, Any] | None = None

    def claims(self) -> dict[str, Any]:
        """The payload as a JSON object, parsed on first use; `InvalidPayloadError` if not."""
        if self._claims is None:
            try:
                claims = json.loads(self.compact.payload)
            except (ValueError, RecursionError):
                raise InvalidPayloadError() from None
            if not isinstance(claims, dict):
                raise InvalidPayloadError()
            self._claims = claims
        return self._claims


def parse_token(token: str) -> UnverifiedToken:
    """`token` parsed once, read before verification only to route it; pass it on to verify.

    Anything that is not a JWS with a JSON-object payload (including JSON nested too deep
    to parse) is an `InvalidToken`.
    """
    try:
        parsed = UnverifiedToken(token)
        parsed.claims()
    except (InvalidToken, JoseError):
        raise InvalidToken("token is not a signed JWT") from None
    return parsed


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, read before verification only to route it."""
    parsed = parse_token(token)
    return parsed.header, parsed.claims()


def _parsed(token: str | UnverifiedToken) -> UnverifiedToken:
    return token if isinstance(token, UnverifiedToken) else UnverifiedToken(token)


def _verify(
    token: UnverifiedToken,
    keys: KeySet,
    *,
    algorithms: Collection[str],
    issuer: str,
    audience: str | None,
    now: int | None,
    leeway: int,
    essential: Collection[str],
) -> dict[str, Any]:
    if token.header.get("alg") not in algorithms:
        raise InvalidToken("token algorithm not allowed")
    options: dict[str, Any] = {name: {"essential": True} for name in essential}
    options["iss"] = {"essential": True, "value": issuer}
    if audience is not None:
        options["aud"] = {"essential": True, "value": audience}
    try:
        # What jwt.decode does, minus re-splitting and re-decoding the token.
        if not jws.validate_compact(token.compact, keys, algorithms=list(algorithms)):
            raise BadSignatureError()
        claims = token.claims()
        jwt.JWTClaimsRegistry(now=now, leeway=leeway, **options).validate(claims)
    except JoseError as exc:
        raise InvalidToken(f"token rejected ({exc.error})") from None
    except ValueError:
        raise InvalidToken("token is malformed") from None
    return dict(claims)


def verify_access_token(
    ring: KeyRing,
    token: str | UnverifiedToken,
    *,
    issuer: str,
    audience: str,
    now: int | None = None,
    leeway: int = 0,
) -> dict[str, Any]:
    """Claims of one of our own access tokens, or `InvalidToken` (answer 401)."""
    parsed = _parsed(token)
    kid = parsed.header.get("kid")
    if not isinstance(kid, str) or not ring.has_kid(kid):
        raise InvalidToken("token key id unknown")
    claims = _verify(
        parsed,
        ring.public_keyset(),
        algorithms=SIGNING_ALGS,
        issuer=issuer,
        audience=audience,
        now=now,
        leeway=leeway,
        essential=("exp", "iat", "jti", "sub", "scope"),
    )
    if claims["exp"] - claims["iat"] > MAX_ACCESS_LIFETIME:
        raise InvalidToken("token lifetime exceeds the allowed maximum")
    return claims


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """A verified token from the hospital IdP, reduced to what MediCore uses."""

    subject: str
    role: str | None
    scope: str
    claims: Mapping[str, Any]


@dataclass(frozen=True)  # no slots: `keys` is cached in the instance __dict__
class ExternalIssuer:
    """A trusted hospital identity provider: issuer, its JWKS (fetched by the caller).

    The JWKS is imported once per instance: keep the instance while the JWKS is unchanged.
    """

    issuer: str
    jwks: Mapping[str, Any]
    audience: str | None = None
    role_claim: str = "role"  # dotted path, e.g. "realm_access.roles"
    role_map: Mapping[str, str] = field(default_factory=dict)
    scope_claim: str = "scope"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "RS384", "ES384", "PS256")

    @cached_property
    def keys(self) -> KeySet:
        """The JWKS as a joserfc KeySet, imported on first use; `InvalidToken` if unusable."""
        try:
            return KeySet.import_key_set(dict(self.jwks))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise InvalidToken("identity provider JWKS is unusable") from None

    def verify(
        self, token: str | UnverifiedToken, *, now: int | None = None, leeway: int = 30
    ) -> ExternalIdentity:
        """Check signature, exp/nbf/iss/aud; map the role claim; `InvalidToken` otherwise."""
        if "none" in self.algorithms or any(a.startswith("HS") for a in self.algorithms):
            raise ValueError("external tokens must be verified with asymmetric algorithms")
        keys = self.keys  # before parsing: an unusable JWKS is reported first, as it always was
        claims = _verify(
            _parsed(token),
            keys,
            algorithms=self.algorithms,
            issuer=self.issuer,
            audience=self.audience,
            now=now,
            leeway=leeway,
            essential=("exp", "sub"),
        )
        scope = claims.get(self.scope_claim, "")
        if isinstance(scope, list):
            scope = " ".join(str(s) for s in scope)
        return ExternalIdentity(
            subject=str(claims["sub"]),
            role=self._role(claims),
            scope=scope if isinstance(scope, str) else "",
            claims=claims,
        )

    def _role(self, claims: Mapping[str, Any]) -> str | None:
        value: Any = claims
        for part in self.role_claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for item in values:
            if not isinstance(item, str):
                continue
            if not self.role_map:
                return item
            if item in self.role_map:
                return self.role_map[item]
        return None


__all__ = [
    "ID_TOKEN_ALG",
    "MAX_ACCESS_LIFETIME",
    "MAX_BACKEND_LIFETIME",
    "ExternalIdentity",
    "ExternalIssuer",
    "IssuedToken",
    "KeyRing",
    "UnverifiedToken",
    "issue_access_token",
    "issue_id_token",
    "parse_token",
    "unverified_parts",
    "verify_access_token",
]
