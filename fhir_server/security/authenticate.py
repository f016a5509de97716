"""Bearer-token authentication for the FHIR routes: our own tokens or the hospital IdP's.

    AuthenticationFailed   -> 401 with `www_authenticate` as the WWW-Authenticate header

The caller maps it to an OperationOutcome; `description` never carries token contents.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from auth.decision import Principal
from auth.errors import InvalidToken
from auth.tokens import UnverifiedToken, parse_token, verify_access_token
from fhir_server.security.context import SecurityContext
from fhir_server.security.jwks_fetch import JwksUnavailable
from fhir_server.security.principal_cache import Verified

REALM = "medicore"


class AuthenticationFailed(Exception):
    """No usable bearer token: answer 401 with `www_authenticate`."""

    status = 401

    def __init__(self, description: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        self.error = error

    @property
    def www_authenticate(self) -> str:
        return challenge(self.error, self.description)


def challenge(error: str | None, description: str) -> str:
    """RFC 6750 section 3: no error code when the request carried no credentials."""
    if error is None:
        return f'Bearer realm="{REALM}"'
    text = description.replace('"', "'")
    return f'Bearer realm="{REALM}", error="{error}", error_description="{text}"'


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer` header, or `AuthenticationFailed`."""
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationFailed("a bearer access token is required", error=None)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
    return token


def _unverified(token: str) -> UnverifiedToken:
    """The token parsed once: read here only to route it, then verified as parsed."""
    try:
        return parse_token(token)
    except InvalidToken:
        raise AuthenticationFailed("the token is not a signed JWT") from None


async def authenticate(request: Request) -> Principal:
    """The verified caller of `request`, or `AuthenticationFailed` (401)."""
    ctx: SecurityContext = request.app.state.security
    return await principal_from_token(ctx, bearer_token(request))


async def principal_from_token(ctx: SecurityContext, token: str) -> Principal:
    """Verify `token` (own issuer or the configured IdP), then check revocation.

    The verification of a token seen in the last few seconds is taken from
    `ctx.principals`; the revocation check never is: one keyed store read per use is
    what makes a revocation hold from the next request in every process and host.
    """
    verified = ctx.principals.get(token)
    if verified is None:
        verified, expires_at = await _verify_principal(ctx, token)
        ctx.principals.put(token, verified, expires_at=expires_at)
    if verified.jti is not None and await ctx.repo.is_revoked(verified.jti):
        ctx.principals.discard(token)
        raise AuthenticationFailed("the token has been revoked")
    return verified.principal


async def _verify_principal(ctx: SecurityContext, token: str) -> tuple[Verified, float | None]:
    parsed = _unverified(token)
    iss = parsed.claims().get("iss")
    try:
        if iss == ctx.issuer:
            claims = verify_access_token(
                ctx.keys, parsed, issuer=ctx.issuer, audience=ctx.fhir_base, now=ctx.now()
            )
        elif ctx.settings.idp_issuer and iss == ctx.settings.idp_issuer:
            claims = await _external_claims(ctx, parsed)
        else:
            raise AuthenticationFailed("the token issuer is not trusted")
    except InvalidToken as exc:
        raise AuthenticationFailed(exc.description) from None
    registered = None
    role = str(claims.get("role", ""))
    if ctx.roles.uses_registered_scopes(role):
        registered = await ctx.registered_scopes(str(claims.get("client_id", "")))
        if registered is None:
            raise AuthenticationFailed("the token's client is no longer registered")
    try:
        principal = Principal.from_claims(claims, registered_scopes=registered, roles=ctx.roles)
    except InvalidToken as exc:
        raise AuthenticationFailed(exc.description) from None
    jti = claims.get("jti")
    exp = claims.get("exp")
    verified = Verified(principal, jti if isinstance(jti, str) else None)
    return verified, float(exp) if isinstance(exp, int | float) else None


async def _external_claims(ctx: SecurityContext, token: UnverifiedToken) -> dict[str, Any]:
    """An IdP token reduced to our claim names (role mapped, scope normalized)."""
    url = ctx.settings.idp_jwks_url
    if not url:
        raise AuthenticationFailed("the identity provider has no JWKS URL configured")
    kid = token.header.get("kid")
    try:
        jwks = await ctx.jwks_cache.get(url, kid=kid if isinstance(kid, str) else None)
    except JwksUnavailable:
        raise AuthenticationFailed("the identity provider's keys are unavailable") from None
    # scope syntax is normalized by Principal.from_claims
    identity = ctx.external_issuer(jwks).verify(token, now=ctx.now())
    raw = identity.claims
    role = identity.role or ""
    if ctx.roles.uses_registered_scopes(role):
        role = ""  # an IdP cannot mint system (registered-scopes) principals
    claims: dict[str, Any] = {
        "sub": identity.subject,
        "role": role,
        "scope": identity.scope,
        "client_id": str(raw.get("azp") or raw.get("client_id") or ""),
    }
    for name in ("jti", "patient", "fhirUser", "purpose_of_use"):
        if name in raw:
            claims[name] = raw[name]
    return claims


__all__ = [
    "REALM",
    "AuthenticationFailed",
    "authenticate",
    "bearer_token",
    "challenge",
    "principal_from_token",
]
