"""`POST /auth/token`: the three grants MediCore issues tokens for, as plain async functions.

Every failure is an `auth.errors.OAuthError` (RFC 6749 section 5.2) carrying its status:
invalid_request / invalid_grant / invalid_scope / unsupported_grant_type /
unauthorized_client -> 400, invalid_client -> 401.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from auth.backend_services import BackendClient, grant_scopes
from auth.errors import InvalidScope, OAuthError
from auth.pkce import verify_s256
from auth.scopes import ScopeSet
from auth.tokens import MAX_ACCESS_LIFETIME, issue_access_token, issue_id_token
from fhir_server.security.clients import authenticate_client
from fhir_server.security.context import SecurityContext

GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"{name} is required", 400)
    return value


def _grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description, 400)


async def token_request(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str
) -> dict[str, Any]:
    """The JSON body of a successful token response, or `OAuthError`."""
    grant_type = form.get("grant_type", "")
    if grant_type == "client_credentials":
        return await client_credentials(ctx, form, token_url=token_url)
    if grant_type == "authorization_code":
        return await authorization_code(ctx, form, token_url=token_url)
    if grant_type == "refresh_token":
        return await refresh_token(ctx, form, token_url=token_url)
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required", 400)
    raise OAuthError("unsupported_grant_type", "supported: " + ", ".join(GRANT_TYPES), 400)


async def client_credentials(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str
) -> dict[str, Any]:
    """SMART Backend Services: a signed assertion in, a system token (<= 5 min) out."""
    caller = await authenticate_client(ctx, form, token_url=token_url)
    if not caller.confidential:
        raise OAuthError("unauthorized_client", "public clients cannot use this grant", 400)
    registered = ScopeSet.parse(str(caller.doc.get("scope", "")))
    client = BackendClient(client_id=caller.client_id, jwks={}, scopes=registered)
    granted = grant_scopes(form.get("scope", ""), client=client)
    issued = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject=caller.client_id,
        client_id=caller.client_id,
        scope=str(granted),
        role=str(caller.doc.get("role", "system")),
        backend_service=True,
        now=ctx.now(),
    )
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": str(granted),
    }


async def authorization_code(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str
) -> dict[str, Any]:
    """Exchange a one-time code (PKCE S256 checked) for user tokens."""
    code = _required(form, "code")
    verifier = _required(form, "code_verifier")
    caller = await authenticate_client(ctx, form, token_url=token_url)
    grant = await ctx.repo.take_code(code)  # consumed even if a check below fails
    if grant is None:
        raise _grant("the authorization code is unknown, expired or already used")
    if grant.get("client_id") != caller.client_id:
        raise _grant("the authorization code was issued to another client")
    if grant.get("redirect_uri") != form.get("redirect_uri"):
        raise _grant("redirect_uri does not match the authorization request")
    if int(grant.get("exp", 0)) < ctx.now():
        raise _grant("the authorization code has expired")
    if not verify_s256(verifier, str(grant.get("code_challenge", ""))):
        raise _grant("code_verifier does not match the code_challenge")
    return await issue_user_tokens(ctx, grant=grant, client_id=caller.client_id)


async def refresh_token(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str
) -> dict[str, Any]:
    """Rotate a refresh token; the user's current role is applied again."""
    token = _required(form, "refresh_token")
    caller = await authenticate_client(ctx, form, token_url=token_url)
    grant = await ctx.repo.get_refresh(token)
    if grant is None or grant.get("client_id") != caller.client_id:
        raise _grant("the refresh token is unknown, revoked or issued to another client")
    if int(grant.get("exp", 0)) < ctx.now():
        raise _grant("the refresh token has expired")
    user = await ctx.repo.get_user(str(grant.get("username", "")))
    if user is None or not user.get("active", True):
        raise _grant("the user account is no longer active")
    scope = _rescope(ctx, grant, user=user, requested=form.get("scope"))
    fresh = {**grant, "scope": scope, "role": user["role"], "fhir_user": user.get("fhir_user")}
    response = await issue_user_tokens(ctx, grant=fresh, client_id=caller.client_id, rotate=token)
    return response


def _rescope(
    ctx: SecurityContext,
    grant: Mapping[str, Any],
    *,
    user: Mapping[str, Any],
    requested: str | None,
) -> str:
    original = ScopeSet.parse(str(grant.get("scope", "")))
    wanted = original
    if requested:
        try:
            wanted = ScopeSet.parse(requested)
        except InvalidScope as exc:
            raise OAuthError("invalid_scope", f"{exc.reason}: {exc.scope}", 400) from None
        beyond = wanted.not_covered_by(original)
        if beyond:
            raise OAuthError("invalid_scope", "not in the original grant: " + " ".join(beyond), 400)
    return str(ctx.roles.ceiling(str(user["role"])).clamp(wanted))


async def issue_user_tokens(
    ctx: SecurityContext,
    *,
    grant: Mapping[str, Any],
    client_id: str,
    rotate: str | None = None,
) -> dict[str, Any]:
    """Access token (+ id_token for `openid fhirUser`, + refresh token for offline/online)."""
    scopes = ScopeSet.parse(str(grant["scope"]))
    lifetime = min(ctx.settings.access_token_lifetime, MAX_ACCESS_LIFETIME)
    patient = grant.get("patient")
    fhir_user = grant.get("fhir_user")
    issued = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject=str(grant["username"]),
        client_id=client_id,
        scope=str(scopes),
        role=str(grant["role"]),
        patient=patient if isinstance(patient, str) else None,
        fhir_user=fhir_user if isinstance(fhir_user, str) else None,
        lifetime=lifetime,
        now=ctx.now(),
    )
    body: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": str(scopes),
    }
    if isinstance(patient, str):
        body["patient"] = patient
    if "openid" in scopes.other and ("fhirUser" in scopes.other or "profile" in scopes.other):
        body["id_token"] = issue_id_token(
            ctx.keys,
            issuer=ctx.issuer,
            client_id=client_id,
            subject=str(grant["username"]),
            fhir_user=_absolute(ctx, fhir_user) if "fhirUser" in scopes.other else None,
            nonce=grant.get("nonce") if isinstance(grant.get("nonce"), str) else None,
            now=ctx.now(),
        )
    refresh = await _refresh(ctx, grant=grant, scopes=scopes, client_id=client_id, rotate=rotate)
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


async def _refresh(
    ctx: SecurityContext,
    *,
    grant: Mapping[str, Any],
    scopes: ScopeSet,
    client_id: str,
    rotate: str | None,
) -> str | None:
    offline = "offline_access" in scopes.other
    if not offline and "online_access" not in scopes.other:
        if rotate is not None and not await ctx.repo.rotate_refresh(
            rotate, dict(grant), None, None
        ):
            raise _grant("the refresh token was already used")
        return None
    now = ctx.now()
    if offline:
        exp = now + ctx.settings.refresh_token_lifetime
    else:  # online access ends with the session it started in
        exp = int(grant.get("exp", 0)) if rotate else now + ctx.settings.online_refresh_lifetime
    token = secrets.token_urlsafe(32)
    doc = {
        "client_id": client_id,
        "username": grant["username"],
        "role": grant["role"],
        "scope": str(scopes),
        "patient": grant.get("patient"),
        "fhir_user": grant.get("fhir_user"),
        "exp": exp,
        "iat": now,
    }
    if rotate is None:
        await ctx.repo.save_refresh(token, doc)
    elif not await ctx.repo.rotate_refresh(rotate, dict(grant), token, doc):
        raise _grant("the refresh token was already used")
    return token


def _absolute(ctx: SecurityContext, fhir_user: Any) -> str | None:
    if not isinstance(fhir_user, str):
        return None
    if fhir_user.startswith(("http://", "https://")):
        return fhir_user
    return f"{ctx.fhir_base}/{fhir_user}"


__all__ = [
    "GRANT_TYPES",
    "authorization_code",
    "client_credentials",
    "issue_user_tokens",
    "refresh_token",
    "token_request",
]
