"""Token revocation (RFC 7009) and introspection (RFC 7662).

Who may introspect (decided here, documented in the SMART configuration):
- a bearer whose role may run the "clients" operation (itadmin in the shipped table):
  any token;
- a confidential client authenticated with `private_key_jwt` that was registered with
  `may_introspect` (a resource server): any token;
- any other confidential client: only tokens issued to itself (others read inactive);
- public clients and other staff: nobody's (401/403). Introspection reveals who holds a
  live token and for which patient, which is not every caller's business.

Who may revoke: the client the token was issued to (public clients name themselves with
`client_id`, confidential ones sign an assertion; the tokens of `medicore token` belong
to the built-in public client `medicore-cli`, see `operator_tokens`). Unknown, expired
or foreign tokens are answered 200 with nothing done, as RFC 7009 section 2.2 asks,
except a token that belongs to another client, which is refused.

Each endpoint first establishes its caller (`revoking_client`, `introspector`), then
acts: the caller is known to the audit record even when the action is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from auth.decision import Principal, decide_operation
from auth.errors import InvalidToken, OAuthError
from auth.tokens import verify_access_token
from fhir_server.security.authenticate import AuthenticationFailed, principal_from_token
from fhir_server.security.clients import CallingClient, authenticate_client
from fhir_server.security.context import SecurityContext
from fhir_server.security.operator_tokens import names_operator_client, operator_client

INTROSPECT_OPERATION = "clients"


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def _own_claims(ctx: SecurityContext, token: str) -> dict[str, Any] | None:
    try:
        return verify_access_token(
            ctx.keys, token, issuer=ctx.issuer, audience=ctx.fhir_base, now=ctx.now()
        )
    except InvalidToken:
        return None


Revocation = Literal["access token revoked", "refresh token revoked", "nothing to revoke"]


async def revoking_client(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str
) -> CallingClient:
    """Who asks to revoke: an authenticated client, or operator tokens' built-in client."""
    if names_operator_client(form):
        return operator_client()
    return await authenticate_client(ctx, form, token_url=token_url)


async def revoke(ctx: SecurityContext, caller: CallingClient, token: str | None) -> Revocation:
    """Revoke an access token (by jti) or a refresh token; silent for unknown tokens."""
    if not token:
        raise OAuthError("invalid_request", "token is required", 400)
    if _looks_like_jwt(token):
        claims = _own_claims(ctx, token)
        if claims is None:
            return "nothing to revoke"
        if claims.get("client_id") != caller.client_id:
            raise OAuthError("unauthorized_client", "the token was issued to another client", 400)
        await ctx.repo.revoke_jti(str(claims["jti"]), expires_at=int(claims["exp"]))
        ctx.principals.discard(token)  # every process checks the store on each use anyway
        return "access token revoked"
    grant = await ctx.repo.get_refresh(token)
    if grant is None:
        return "nothing to revoke"
    if grant.get("client_id") != caller.client_id:
        raise OAuthError("unauthorized_client", "the token was issued to another client", 400)
    await ctx.repo.rotate_refresh(token, grant, None, None)
    return "refresh token revoked"


@dataclass(frozen=True, slots=True)
class Introspector:
    """Who asks to introspect: a client that signed an assertion, or a bearer's principal."""

    client: CallingClient | None = None
    principal: Principal | None = None


async def introspector(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str, bearer: str | None
) -> Introspector:
    """The authenticated caller of `/auth/introspect`, or `OAuthError` (401)."""
    if form.get("client_assertion"):
        return Introspector(client=await authenticate_client(ctx, form, token_url=token_url))
    if bearer:
        try:
            return Introspector(principal=await principal_from_token(ctx, bearer))
        except AuthenticationFailed as exc:
            raise OAuthError("invalid_token", exc.description, 401) from None
    raise OAuthError(
        "invalid_client", "introspection needs a confidential client or an itadmin token", 401
    )


def introspection_scope(ctx: SecurityContext, caller: Introspector) -> str | None:
    """The client id `caller` may introspect tokens of (None: any), or `OAuthError` (403)."""
    if caller.client is not None:
        return None if caller.client.doc.get("may_introspect") else caller.client.client_id
    if decide_operation(caller.principal, INTROSPECT_OPERATION, roles=ctx.roles).allowed:
        return None
    raise OAuthError("insufficient_scope", "this role may not introspect tokens", 403)


async def introspect(
    ctx: SecurityContext, token: str, *, only_client: str | None = None
) -> dict[str, Any]:
    """RFC 7662 response for one of our access or refresh tokens.

    With `only_client`, tokens of other clients answer inactive (as if unknown).
    """
    inactive: dict[str, Any] = {"active": False}
    if _looks_like_jwt(token):
        claims = _own_claims(ctx, token)
        if claims is None or await ctx.repo.is_revoked(str(claims["jti"])):
            return inactive
        if only_client is not None and claims.get("client_id") != only_client:
            return inactive
        out: dict[str, Any] = {"active": True, "token_type": "Bearer"}
        for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti"):
            out[name] = claims.get(name)
        for name in ("role", "patient", "fhirUser"):
            out[name] = claims.get(name)
        return {k: v for k, v in out.items() if v is not None}
    grant = await ctx.repo.get_refresh(token)
    if grant is None or int(grant.get("exp", 0)) < ctx.now():
        return inactive
    if only_client is not None and grant.get("client_id") != only_client:
        return inactive
    out = {
        "active": True,
        "token_type": "refresh_token",
        "scope": grant.get("scope"),
        "client_id": grant.get("client_id"),
        "sub": grant.get("username"),
        "exp": grant.get("exp"),
        "iat": grant.get("iat"),
    }
    return {k: v for k, v in out.items() if v is not None}


__all__ = [
    "INTROSPECT_OPERATION",
    "Introspector",
    "Revocation",
    "introspect",
    "introspection_scope",
    "introspector",
    "revoke",
    "revoking_client",
]
